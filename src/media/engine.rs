//! The media clock: a few plain threads that tick every call leg every 20 ms.
//!
//! A leg (`Clocked`) is a synchronous state machine: it reads its sockets and commands, and
//! sends one packet per tick. Running thousands of them as tokio tasks cost a timer, a
//! wake-up and a task poll per leg per tick; here one thread walks all of its legs at each
//! tick and sleeps in between, so the per-leg cost is the leg's own work and its system
//! calls. Commands are not left waiting for the next tick: whoever queues one calls
//! `Waker::wake`, which names the leg to its thread, and the thread takes them at once (a
//! caller's turn that ends early should not wait 20 ms for its reply to be queued). A leg is
//! never asked for commands otherwise (but once a second, as a safety net): looking at
//! thousands of idle queues every tick costs a cache miss each.
//!
//! Legs are spread over the threads by count (the least loaded thread gets the next leg). A
//! leg that panics is dropped (its owner sees its channels close); the other legs on that
//! thread carry on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The media frame period.
pub const TICK: Duration = Duration::from_millis(20);
/// How far a late thread catches up tick by tick before it skips ahead instead (a burst of
/// more than 10 frames would only flood the far end's jitter buffer).
const MAX_BURST: u32 = 10;

/// One call leg driven by the media clock.
pub trait Clocked: Send {
    /// Takes queued commands (after `Waker::wake`, and once a second). False: the leg is
    /// over.
    fn on_wake(&mut self) -> bool;
    /// One 20 ms frame: receive, play out, send. False: the leg is over.
    fn on_tick(&mut self) -> bool;
    /// The leg is over: release what it holds and report.
    fn finish(self: Box<Self>);
}

/// Ticks between two looks at every leg's commands without a wake.
const POLL_TICKS: u64 = 50;

struct Worker {
    incoming: Mutex<Vec<(u64, Box<dyn Clocked>)>>,
    /// Legs named by `Waker::wake` since the thread last looked.
    woken: Mutex<Vec<u64>>,
    thread: OnceLock<std::thread::Thread>,
    legs: AtomicUsize,
}

/// Tells a leg's thread that commands are waiting for that leg.
#[derive(Clone)]
pub struct Waker {
    worker: Arc<Worker>,
    leg: u64,
}

impl Waker {
    pub fn wake(&self) {
        self.worker
            .woken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.leg);
        if let Some(t) = self.worker.thread.get() {
            t.unpark();
        }
    }
}

pub struct Engine {
    workers: Vec<Arc<Worker>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// The process-wide media clock: one thread per core.
    pub fn global() -> &'static Engine {
        static ENGINE: OnceLock<Engine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            Engine::new(n.clamp(1, 16), "voxdesk-media")
        })
    }

    /// `threads` threads named `{name}-{i}` (the benchmarks find them by that name).
    pub fn new(threads: usize, name: &str) -> Engine {
        let workers = (0..threads.max(1))
            .map(|i| {
                let w = Arc::new(Worker {
                    incoming: Mutex::new(Vec::new()),
                    woken: Mutex::new(Vec::new()),
                    thread: OnceLock::new(),
                    legs: AtomicUsize::new(0),
                });
                let w2 = w.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || run(w2))
                    .expect("cannot start a media thread");
                let _ = w.thread.set(handle.thread().clone());
                w
            })
            .collect();
        Engine {
            workers,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Hands a leg to the least loaded thread; it gets its first tick at that thread's
    /// next frame boundary.
    pub fn add(&self, leg: Box<dyn Clocked>) -> Waker {
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.legs.load(Ordering::Relaxed))
            .expect("at least one media thread");
        w.legs.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        w.incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, leg));
        let waker = Waker {
            worker: w.clone(),
            leg: id,
        };
        waker.wake();
        waker
    }

    /// Legs now running, over all threads.
    pub fn legs(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.legs.load(Ordering::Relaxed))
            .sum()
    }
}

/// Runs `f` on a leg; a panic ends that leg only.
fn guarded(leg: &mut Box<dyn Clocked>, f: impl FnOnce(&mut Box<dyn Clocked>) -> bool) -> bool {
    match catch_unwind(AssertUnwindSafe(|| f(leg))) {
        Ok(alive) => alive,
        Err(_) => {
            tracing::error!("a media leg panicked and was dropped");
            false
        }
    }
}

/// A thread's legs, and where each one sits (legs leave by `swap_remove`).
#[derive(Default)]
struct Legs {
    legs: Vec<(u64, Box<dyn Clocked>)>,
    index: std::collections::HashMap<u64, usize>,
}

impl Legs {
    fn push(&mut self, id: u64, leg: Box<dyn Clocked>) {
        self.index.insert(id, self.legs.len());
        self.legs.push((id, leg));
    }

    /// Ends the leg at `i`; the last leg takes its place.
    fn end(&mut self, i: usize, worker: &Worker) {
        let (id, leg) = self.legs.swap_remove(i);
        self.index.remove(&id);
        if let Some((moved, _)) = self.legs.get(i) {
            self.index.insert(*moved, i);
        }
        worker.legs.fetch_sub(1, Ordering::Relaxed);
        if catch_unwind(AssertUnwindSafe(|| leg.finish())).is_err() {
            tracing::error!("a media leg panicked while finishing");
        }
    }
}

fn run(worker: Arc<Worker>) {
    let mut legs = Legs::default();
    let mut woken = Vec::new();
    let mut next = Instant::now() + TICK;
    let mut ticks: u64 = 0;
    loop {
        for (id, leg) in worker
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            legs.push(id, leg);
        }
        std::mem::swap(
            &mut woken,
            &mut *worker.woken.lock().unwrap_or_else(|p| p.into_inner()),
        );
        for id in woken.drain(..) {
            let Some(&i) = legs.index.get(&id) else {
                continue; // already over
            };
            if !guarded(&mut legs.legs[i].1, |l| l.on_wake()) {
                legs.end(i, &worker);
            }
        }
        let now = Instant::now();
        if now < next {
            std::thread::park_timeout(next - now);
            continue;
        }
        ticks += 1;
        let poll = ticks.is_multiple_of(POLL_TICKS);
        let mut i = 0;
        while i < legs.legs.len() {
            let alive = guarded(&mut legs.legs[i].1, |l| {
                (!poll || l.on_wake()) && l.on_tick()
            });
            if alive {
                i += 1;
            } else {
                legs.end(i, &worker);
            }
        }
        next += TICK;
        if now > next + TICK * MAX_BURST {
            tracing::warn!(
                legs = legs.legs.len(),
                "media thread fell behind by more than {MAX_BURST} frames; skipping ahead"
            );
            next = now + TICK;
        }
        // A late thread catches up before it sleeps.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Probe {
        ticks: Arc<AtomicUsize>,
        wakes: Arc<AtomicUsize>,
        stop_after: usize,
        panic_at: Option<usize>,
        finished: Arc<AtomicBool>,
    }

    impl Clocked for Probe {
        fn on_wake(&mut self) -> bool {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn on_tick(&mut self) -> bool {
            let n = self.ticks.fetch_add(1, Ordering::SeqCst) + 1;
            if Some(n) == self.panic_at {
                panic!("probe panics on purpose");
            }
            n < self.stop_after
        }
        fn finish(self: Box<Self>) {
            self.finished.store(true, Ordering::SeqCst);
        }
    }

    fn probe(
        stop_after: usize,
        panic_at: Option<usize>,
    ) -> (Probe, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let t = Arc::new(AtomicUsize::new(0));
        let w = Arc::new(AtomicUsize::new(0));
        let f = Arc::new(AtomicBool::new(false));
        (
            Probe {
                ticks: t.clone(),
                wakes: w.clone(),
                stop_after,
                panic_at,
                finished: f.clone(),
            },
            t,
            w,
            f,
        )
    }

    fn wait_for(what: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !what() {
            assert!(Instant::now() < until, "timed out");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn legs_tick_until_they_end_and_are_then_finished() {
        let engine = Engine::new(2, "test-media");
        let (p, ticks, _, finished) = probe(5, None);
        engine.add(Box::new(p));
        wait_for(|| finished.load(Ordering::SeqCst));
        assert_eq!(ticks.load(Ordering::SeqCst), 5);
        wait_for(|| engine.legs() == 0);
    }

    #[test]
    fn a_wake_is_served_between_ticks() {
        let engine = Engine::new(1, "test-media");
        let (p, _, wakes, _) = probe(usize::MAX, None);
        let waker = engine.add(Box::new(p));
        wait_for(|| wakes.load(Ordering::SeqCst) >= 1);
        let before = wakes.load(Ordering::SeqCst);
        waker.wake();
        wait_for(|| wakes.load(Ordering::SeqCst) > before);
    }

    #[test]
    fn a_panicking_leg_is_finished_and_its_neighbours_go_on() {
        let engine = Engine::new(1, "test-media");
        let (bad, _, _, bad_finished) = probe(usize::MAX, Some(2));
        let (good, good_ticks, _, _) = probe(usize::MAX, None);
        engine.add(Box::new(bad));
        engine.add(Box::new(good));
        wait_for(|| engine.legs() == 1);
        let seen = good_ticks.load(Ordering::SeqCst);
        wait_for(|| good_ticks.load(Ordering::SeqCst) > seen + 2);
        // What it holds is still released (a recording gets its header).
        assert!(bad_finished.load(Ordering::SeqCst));
    }

    #[test]
    fn legs_are_spread_over_the_threads() {
        let engine = Engine::new(2, "test-media");
        for _ in 0..4 {
            let (p, _, _, _) = probe(usize::MAX, None);
            engine.add(Box::new(p));
        }
        let counts: Vec<usize> = engine
            .workers
            .iter()
            .map(|w| w.legs.load(Ordering::SeqCst))
            .collect();
        assert_eq!(counts, vec![2, 2]);
    }
}
