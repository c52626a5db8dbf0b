//! The inference pool: a fixed set of OS threads (one per core by default) that run the
//! speech models, so a decode never blocks the async runtime's reactor threads and the number
//! of concurrent decodes (and decoder states in memory) stays bounded whatever the call count.
//!
//! Two queues: urgent work (a finished turn's transcript, a reply's speech) goes before
//! speculative work (transcribing a pause that may not be the end of the turn), and
//! speculative work is refused outright while anything is waiting. Each queue is bounded: a
//! job beyond it is refused at once, and the caller hears a fallback instead of waiting
//! forever. A job is told how many CPU threads it may use: all cores when it runs alone, one
//! when every worker is busy. A job that has been given up (its stop flag set, see
//! `submit_cancellable`) does not count: it ends within milliseconds, and the transcript
//! that replaced it should not run on half the cores for its whole length.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use thiserror::Error;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(usize) + Send>;

/// A job and the flag that gives it up, if it has one.
struct Queued {
    run: Job,
    stop: Option<Arc<AtomicBool>>,
}

/// What a worker is running.
#[derive(Default)]
struct Slot {
    busy: bool,
    stop: Option<Arc<AtomicBool>>,
}

impl Slot {
    /// Running and still wanted.
    fn counts(&self) -> bool {
        self.busy
            && !self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("inference queue full ({0} jobs waiting)")]
    Busy(usize),
}

/// Why an inference job gave no result.
#[derive(Debug, Error)]
pub enum JobError {
    #[error(transparent)]
    Stt(#[from] super::stt::SttError),
    #[error(transparent)]
    Voice(#[from] super::tts::TtsError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A speculative job whose audio was superseded before it ran.
    #[error("no longer needed")]
    Stale,
    #[error("{0} failed (worker panic)")]
    Panicked(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone is waiting for it now.
    Urgent,
    /// Might save time later; dropped under load.
    Speculative,
    /// Nobody waits for it (bridged calls' transcripts): after every urgent job, in order;
    /// refused only when the queue is full.
    Background,
}

#[derive(Default)]
struct Queues {
    urgent: VecDeque<Queued>,
    speculative: VecDeque<Queued>,
    background: VecDeque<Queued>,
}

impl Queues {
    fn len(&self) -> usize {
        self.urgent.len() + self.speculative.len() + self.background.len()
    }
}

struct Inner {
    queues: Mutex<Queues>,
    ready: Condvar,
    busy: AtomicUsize,
    /// One per worker.
    slots: Mutex<Vec<Slot>>,
}

pub struct InferencePool {
    inner: Arc<Inner>,
    workers: usize,
    cores: usize,
    capacity: usize,
}

impl InferencePool {
    pub fn new(workers: usize, queue: usize) -> InferencePool {
        let workers = workers.max(1);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(workers);
        let inner = Arc::new(Inner {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            busy: AtomicUsize::new(0),
            slots: Mutex::new((0..workers).map(|_| Slot::default()).collect()),
        });
        for i in 0..workers {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("infer-{i}"))
                .spawn(move || loop {
                    let job = {
                        let mut q = inner.queues.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if let Some(j) = q
                                .urgent
                                .pop_front()
                                .or_else(|| q.speculative.pop_front())
                                .or_else(|| q.background.pop_front())
                            {
                                break j;
                            }
                            q = inner.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    inner.busy.fetch_add(1, Ordering::Relaxed);
                    let threads = {
                        let mut slots = inner.slots.lock().unwrap_or_else(|e| e.into_inner());
                        slots[i] = Slot {
                            busy: true,
                            stop: job.stop,
                        };
                        (cores / slots.iter().filter(|s| s.counts()).count().max(1)).max(1)
                    };
                    // A panicking model must not take the worker down with it.
                    let run = job.run;
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(threads)));
                    inner.slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Slot::default();
                    inner.busy.fetch_sub(1, Ordering::Relaxed);
                })
                .expect("spawn inference worker");
        }
        InferencePool {
            inner,
            workers,
            cores,
            capacity: queue,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Jobs running that are still wanted (not given up).
    fn wanted_running(&self) -> usize {
        let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter().filter(|s| s.counts()).count()
    }

    /// Jobs running and waiting now.
    pub fn load(&self) -> (usize, usize) {
        let q = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        (self.inner.busy.load(Ordering::Relaxed), q.len())
    }

    /// Runs `f(threads)` on a worker; the result arrives on the returned channel (dropped
    /// without a value if the job panicked).
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        self.submit_with(Priority::Urgent, f)
    }

    pub fn submit_with<T, F>(&self, prio: Priority, f: F) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        self.enqueue(prio, None, f)
    }

    /// `submit_with` for a job that gives up when `stop` is set: from then on it no longer
    /// counts when the threads of the next job are shared out.
    pub fn submit_cancellable<T, F>(
        &self,
        prio: Priority,
        stop: Arc<AtomicBool>,
        f: F,
    ) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        self.enqueue(prio, Some(stop), f)
    }

    fn enqueue<T, F>(
        &self,
        prio: Priority,
        stop: Option<Arc<AtomicBool>>,
        f: F,
    ) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Queued {
            run: Box::new(move |threads| {
                let _ = tx.send(f(threads));
            }),
            stop,
        };
        let mut q = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = q.len();
        match prio {
            Priority::Urgent if q.urgent.len() < self.capacity => q.urgent.push_back(job),
            Priority::Urgent => return Err(PoolError::Busy(waiting)),
            // Speculation only when a worker would start on it right away (or within the few
            // milliseconds a given-up job takes to end).
            Priority::Speculative if waiting == 0 && self.wanted_running() < self.workers => {
                q.speculative.push_back(job)
            }
            Priority::Speculative => return Err(PoolError::Busy(waiting)),
            Priority::Background if q.background.len() < self.capacity => {
                q.background.push_back(job)
            }
            Priority::Background => return Err(PoolError::Busy(waiting)),
        }
        drop(q);
        self.inner.ready.notify_one();
        Ok(rx)
    }

    /// Runs `f(threads)` on a worker and waits for it (for blocking callers: tools, tests).
    pub fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(usize) -> T + Send + 'static,
    {
        self.submit(f).ok()?.blocking_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_bounds_the_queue_and_sheds_speculation() {
        let pool = InferencePool::new(1, 1);
        assert_eq!(pool.run_blocking(|t| t >= 1), Some(true));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let first = pool.submit(move |_| gate_rx.recv().ok()).unwrap();
        // Wait until the worker holds the first job, so the queue is empty again.
        while pool.load() != (1, 0) {
            std::thread::yield_now();
        }
        // The only worker is busy: speculative work is refused, urgent work queues.
        assert!(pool.submit_with(Priority::Speculative, |_| 0).is_err());
        let second = pool.submit(|_| 2).unwrap();
        assert_eq!(pool.submit(|_| 3).unwrap_err(), PoolError::Busy(1));
        gate_tx.send(()).unwrap();
        assert_eq!(first.blocking_recv().unwrap(), Some(()));
        assert_eq!(second.blocking_recv().unwrap(), 2);
        assert_eq!(
            pool.submit_with(Priority::Speculative, |_| 4)
                .unwrap()
                .blocking_recv()
                .unwrap(),
            4
        );
    }

    #[test]
    fn background_work_waits_behind_urgent_work() {
        let pool = InferencePool::new(1, 2);
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = pool.submit(move |_| gate_rx.recv().ok()).unwrap();
        while pool.load() != (1, 0) {
            std::thread::yield_now();
        }
        let o = order.clone();
        let bg = pool
            .submit_with(Priority::Background, move |_| o.lock().unwrap().push("bg"))
            .unwrap();
        let o = order.clone();
        let urgent = pool
            .submit(move |_| o.lock().unwrap().push("urgent"))
            .unwrap();
        let o = order.clone();
        let bg2 = pool
            .submit_with(Priority::Background, move |_| o.lock().unwrap().push("bg2"))
            .unwrap();
        // The background queue is full (capacity 2): refused, not dropped silently.
        assert!(pool.submit_with(Priority::Background, |_| ()).is_err());
        gate_tx.send(()).unwrap();
        first.blocking_recv().unwrap();
        urgent.blocking_recv().unwrap();
        bg.blocking_recv().unwrap();
        bg2.blocking_recv().unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["urgent", "bg", "bg2"]);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = InferencePool::new(1, 4);
        let r = pool.submit(|_| -> u8 { panic!("model exploded") }).unwrap();
        assert!(r.blocking_recv().is_err());
        assert_eq!(pool.run_blocking(|_| 7), Some(7));
    }

    /// A speculative job that runs until the returned gate opens (or is dropped), and has
    /// started by the time this returns.
    fn hold_a_worker(
        pool: &InferencePool,
    ) -> (
        Arc<AtomicBool>,
        std::sync::mpsc::Sender<()>,
        oneshot::Receiver<Option<()>>,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let job = pool
            .submit_cancellable(Priority::Speculative, stop.clone(), move |_| {
                gate_rx.recv().ok()
            })
            .unwrap();
        while pool.load() != (1, 0) {
            std::thread::yield_now();
        }
        (stop, gate_tx, job)
    }

    #[test]
    fn a_job_given_up_leaves_its_cores_to_the_next() {
        let pool = InferencePool::new(2, 4);
        let cores = pool.cores();
        let (stop, gate_tx, first) = hold_a_worker(&pool);
        // Still wanted: the next job shares the cores with it.
        let shared = pool.run_blocking(|t| t).unwrap();
        assert_eq!(shared, (cores / 2).max(1));
        // Given up (and about to end): the next job gets them all.
        stop.store(true, Ordering::Relaxed);
        assert_eq!(pool.run_blocking(|t| t), Some(cores));
        gate_tx.send(()).unwrap();
        first.blocking_recv().unwrap();
    }

    #[test]
    fn speculation_may_queue_behind_a_job_given_up() {
        let pool = InferencePool::new(1, 4);
        let (stop, gate_tx, first) = hold_a_worker(&pool);
        assert!(pool.submit_with(Priority::Speculative, |_| 1).is_err());
        // Given up: its worker is as good as free.
        stop.store(true, Ordering::Relaxed);
        let next = pool.submit_with(Priority::Speculative, |_| 2).unwrap();
        gate_tx.send(()).unwrap();
        first.blocking_recv().unwrap();
        assert_eq!(next.blocking_recv().unwrap(), 2);
    }
}
