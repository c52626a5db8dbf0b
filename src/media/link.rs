//! A one-way audio link between two bridged legs: the sending leg puts one decoded 20 ms
//! frame in at each tick, the receiving leg mixes one out at each of its ticks.
//!
//! The two legs tick on their own clocks (possibly on two media threads), so the link holds
//! a little slack; past `CAPACITY` frames (100 ms) the oldest is dropped, which keeps the
//! delay bounded when the receiver falls behind. One small allocation and an uncontended
//! lock: the whole link is a few cache lines, touched twice per 20 ms.

use super::frame::{Frame, FRAME};
use std::sync::{Arc, Mutex};

/// Frames held at most (100 ms).
pub const CAPACITY: usize = 5;

struct Ring {
    frames: [Frame; CAPACITY],
    head: usize,
    len: usize,
}

type Shared = Arc<Mutex<Ring>>;

/// The sending end.
pub struct FrameTx(Shared);
/// The receiving end.
pub struct FrameRx(Shared);

/// A new, empty link.
pub fn frame_link() -> (FrameTx, FrameRx) {
    let ring = Arc::new(Mutex::new(Ring {
        frames: [[0; FRAME]; CAPACITY],
        head: 0,
        len: 0,
    }));
    (FrameTx(ring.clone()), FrameRx(ring))
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Ring> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FrameTx {
    /// Queues a frame; when the link is full the oldest frame is dropped.
    pub fn send(&self, f: &Frame) {
        let mut r = lock(&self.0);
        if r.len == CAPACITY {
            r.head = (r.head + 1) % CAPACITY;
            r.len -= 1;
        }
        let at = (r.head + r.len) % CAPACITY;
        r.frames[at] = *f;
        r.len += 1;
    }
}

impl FrameRx {
    /// Adds the oldest queued frame into `out` (saturating); false when none was queued.
    pub fn mix_into(&self, out: &mut Frame) -> bool {
        let mut r = lock(&self.0);
        if r.len == 0 {
            return false;
        }
        let at = r.head;
        r.head = (r.head + 1) % CAPACITY;
        r.len -= 1;
        for (o, s) in out.iter_mut().zip(r.frames[at].iter()) {
            *o = o.saturating_add(*s);
        }
        true
    }

    /// Frames waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Frame {
        [v; FRAME]
    }

    #[test]
    fn frames_come_out_in_order_and_mix_saturating() {
        let (tx, rx) = frame_link();
        tx.send(&frame(100));
        tx.send(&frame(i16::MAX));
        let mut out = frame(1);
        assert!(rx.mix_into(&mut out));
        assert_eq!(out, frame(101));
        assert!(rx.mix_into(&mut out));
        assert_eq!(out, frame(i16::MAX));
        assert!(!rx.mix_into(&mut out));
    }

    #[test]
    fn a_full_link_drops_its_oldest_frame() {
        let (tx, rx) = frame_link();
        for v in 1..=(CAPACITY as i16 + 2) {
            tx.send(&frame(v));
        }
        assert_eq!(rx.len(), CAPACITY);
        let mut out = frame(0);
        rx.mix_into(&mut out);
        assert_eq!(out, frame(3), "frames 1 and 2 were dropped");
    }
}
