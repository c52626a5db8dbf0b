//! The inference pool: a fixed set of OS threads (one per core by default) that run the
//! speech models, so a decode never blocks the async runtime's reactor threads and the number
//! of concurrent decodes (and decoder states in memory) stays bounded whatever the call count.
//!
//! Jobs queue when every worker is busy (bounded queue: beyond it a job is refused at once,
//! and the caller hears a fallback instead of waiting forever). A job is told how many CPU
//! threads it may use: all cores when it runs alone, one when every worker is busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(usize) + Send>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("inference queue full ({0} jobs waiting)")]
    Busy(usize),
    #[error("inference pool stopped")]
    Stopped,
}

pub struct InferencePool {
    tx: SyncSender<Job>,
    workers: usize,
    cores: usize,
    busy: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl InferencePool {
    pub fn new(workers: usize, queue: usize) -> InferencePool {
        let workers = workers.max(1);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(workers);
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let busy = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..workers {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            let (busy, queued) = (busy.clone(), queued.clone());
            std::thread::Builder::new()
                .name(format!("infer-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    queued.fetch_sub(1, Ordering::Relaxed);
                    let running = busy.fetch_add(1, Ordering::Relaxed) + 1;
                    let threads = (cores / running).max(1);
                    // A panicking model must not take the worker down with it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(threads)));
                    busy.fetch_sub(1, Ordering::Relaxed);
                })
                .expect("spawn inference worker");
        }
        InferencePool {
            tx,
            workers,
            cores,
            busy,
            queued,
            capacity: queue,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Jobs running and waiting now.
    pub fn load(&self) -> (usize, usize) {
        (
            self.busy.load(Ordering::Relaxed),
            self.queued.load(Ordering::Relaxed),
        )
    }

    /// Runs `f(threads)` on a worker; the result arrives on the returned channel (dropped
    /// without a value if the job panicked).
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move |threads| {
            let _ = tx.send(f(threads));
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(PoolError::Busy(self.capacity))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(PoolError::Stopped)
            }
        }
    }

    /// Runs `f(threads)` on a worker and waits for it (for blocking callers: tools, tests).
    pub fn run_blocking<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        self.submit(f)?
            .blocking_recv()
            .map_err(|_| PoolError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_and_bounds_the_queue() {
        let pool = InferencePool::new(1, 1);
        assert_eq!(pool.run_blocking(|t| t >= 1), Ok(true));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let first = pool.submit(move |_| gate_rx.recv().ok()).unwrap();
        // Wait until the worker holds the first job, so the queue is empty again.
        while pool.load().1 > 0 {
            std::thread::yield_now();
        }
        let second = pool.submit(|_| 2).unwrap();
        assert_eq!(pool.submit(|_| 3).unwrap_err(), PoolError::Busy(1));
        gate_tx.send(()).unwrap();
        assert_eq!(first.blocking_recv().unwrap(), Some(()));
        assert_eq!(second.blocking_recv().unwrap(), 2);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = InferencePool::new(1, 4);
        let r = pool.submit(|_| -> u8 { panic!("model exploded") }).unwrap();
        assert!(r.blocking_recv().is_err());
        assert_eq!(pool.run_blocking(|_| 7), Ok(7));
    }
}
