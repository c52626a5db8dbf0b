//! A sans-IO jitter buffer for fixed-frame audio (G.711 at 20 ms by default).
//!
//! Packets go in with [`JitterBuffer::push`] as they arrive; the media clock pulls one frame
//! per tick with [`JitterBuffer::pop`]. The buffer reorders, drops duplicates and packets that
//! arrive after their play-out time, and reports gaps so the caller can conceal them.

use std::collections::BTreeMap;

/// What the play-out clock gets for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// The frame for this tick.
    Frame(Vec<u8>),
    /// The frame for this tick is missing (lost or late): conceal.
    Missing,
    /// Nothing buffered yet (before the first packet, or after a long silence).
    Idle,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub missing: u64,
    pub overflow: u64,
}

pub struct JitterBuffer {
    /// Frames of delay before the first play-out (the prefetch).
    depth: usize,
    /// Capacity in frames; older frames are dropped beyond it.
    capacity: usize,
    /// Samples per frame (RTP timestamp units per tick).
    frame_ts: u32,
    frames: BTreeMap<u64, Vec<u8>>,
    /// Extended timestamp of the next frame to play, once started.
    next: Option<u64>,
    /// Highest extended timestamp seen, for unwrapping.
    last_ext: Option<u64>,
    consecutive_missing: usize,
    pub stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(frame_ts: u32, depth: usize, capacity: usize) -> Self {
        JitterBuffer {
            depth: depth.max(1),
            capacity: capacity.max(depth + 1),
            frame_ts: frame_ts.max(1),
            frames: BTreeMap::new(),
            next: None,
            last_ext: None,
            consecutive_missing: 0,
            stats: JitterStats::default(),
        }
    }

    /// Extends a 32-bit RTP timestamp to 64 bits around the last one seen.
    fn extend(&mut self, ts: u32) -> u64 {
        let ext = match self.last_ext {
            None => ts as u64 + (1u64 << 32),
            Some(last) => {
                let base = last & !0xffff_ffff;
                let candidates = [
                    base.wrapping_sub(1 << 32) | ts as u64,
                    base | ts as u64,
                    (base + (1 << 32)) | ts as u64,
                ];
                *candidates
                    .iter()
                    .min_by_key(|c| (**c as i128 - last as i128).abs())
                    .expect("three candidates")
            }
        };
        if self.last_ext.map(|l| ext > l).unwrap_or(true) {
            self.last_ext = Some(ext);
        }
        ext
    }

    /// Adds a packet's payload by its RTP timestamp.
    pub fn push(&mut self, timestamp: u32, payload: &[u8]) {
        let ext = self.extend(timestamp);
        self.stats.received += 1;
        if let Some(next) = self.next {
            if ext < next {
                self.stats.late += 1;
                return;
            }
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.frames.insert(ext, payload.to_vec());
        while self.frames.len() > self.capacity {
            let first = *self.frames.keys().next().expect("non-empty");
            self.frames.remove(&first);
            self.stats.overflow += 1;
            if let Some(n) = self.next.as_mut() {
                *n = (*n).max(first + self.frame_ts as u64);
            }
        }
    }

    /// Takes the frame for the current tick.
    pub fn pop(&mut self) -> Playout {
        let next = match self.next {
            Some(n) => n,
            None => {
                if self.frames.len() < self.depth {
                    return Playout::Idle;
                }
                *self.frames.keys().next().expect("non-empty")
            }
        };
        self.next = Some(next + self.frame_ts as u64);
        match self.frames.remove(&next) {
            Some(f) => {
                self.consecutive_missing = 0;
                Playout::Frame(f)
            }
            None => {
                // A frame may straddle ticks when the sender's ptime differs: take the
                // first buffered frame that starts inside this tick.
                if let Some((&k, _)) = self.frames.range(next..next + self.frame_ts as u64).next() {
                    let f = self.frames.remove(&k).expect("present");
                    self.consecutive_missing = 0;
                    return Playout::Frame(f);
                }
                self.consecutive_missing += 1;
                self.stats.missing += 1;
                if self.frames.is_empty() && self.consecutive_missing > self.capacity {
                    // Long silence (DTX, hold): re-prime on the next packet.
                    self.next = None;
                    self.consecutive_missing = 0;
                    return Playout::Idle;
                }
                Playout::Missing
            }
        }
    }

    pub fn buffered(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Vec<u8> {
        vec![n; 160]
    }

    #[test]
    fn reorders_and_primes() {
        let mut j = JitterBuffer::new(160, 2, 10);
        assert_eq!(j.pop(), Playout::Idle);
        j.push(320, &frame(2));
        assert_eq!(j.pop(), Playout::Idle, "waits for depth");
        j.push(160, &frame(1));
        assert_eq!(j.pop(), Playout::Frame(frame(1)));
        assert_eq!(j.pop(), Playout::Frame(frame(2)));
        assert_eq!(j.pop(), Playout::Missing);
        j.push(480, &frame(3)); // late: its slot has passed
        assert_eq!(j.stats.late, 1);
        j.push(640, &frame(4));
        j.push(640, &frame(4));
        assert_eq!(j.stats.duplicates, 1);
        assert_eq!(j.pop(), Playout::Frame(frame(4)));
    }

    #[test]
    fn timestamp_wraparound() {
        let mut j = JitterBuffer::new(160, 1, 10);
        let start = u32::MAX - 159;
        j.push(start, &frame(1));
        j.push(start.wrapping_add(160), &frame(2));
        j.push(start.wrapping_add(320), &frame(3));
        assert_eq!(j.pop(), Playout::Frame(frame(1)));
        assert_eq!(j.pop(), Playout::Frame(frame(2)));
        assert_eq!(j.pop(), Playout::Frame(frame(3)));
    }

    #[test]
    fn overflow_drops_oldest_and_silence_reprimes() {
        let mut j = JitterBuffer::new(160, 1, 3);
        for i in 0..6u32 {
            j.push(i * 160, &frame(i as u8));
        }
        assert_eq!(j.stats.overflow, 3);
        assert_eq!(j.pop(), Playout::Frame(frame(3)));
        j.pop();
        j.pop();
        for _ in 0..4 {
            j.pop();
        }
        assert_eq!(j.pop(), Playout::Idle);
        j.push(100_000, &frame(9));
        assert_eq!(j.pop(), Playout::Frame(frame(9)));
    }
}
