//! A sans-IO jitter buffer for fixed-frame audio (G.711 at 20 ms by default).
//!
//! Packets go in with [`JitterBuffer::push`] as they arrive; the media clock pulls one frame
//! per tick with [`JitterBuffer::pop`]. The buffer reorders, drops duplicates and packets that
//! arrive after their play-out time, and reports gaps so the caller can conceal them.
//!
//! Frames are kept in timestamp order in a short deque, and their byte buffers are reused:
//! after the first few packets of a call nothing is allocated per packet (this runs for
//! every leg on every tick of the media clock).

use std::collections::VecDeque;

/// What the play-out clock gets for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The frame for this tick.
    Frame(&'a [u8]),
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
    /// Buffered frames by extended timestamp, oldest first.
    frames: VecDeque<(u64, Vec<u8>)>,
    /// The frame `pop` handed out last (borrowed by its `Playout`).
    out: Vec<u8>,
    /// Byte buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// Extended timestamp of the next frame to play, once started.
    next: Option<u64>,
    /// Highest extended timestamp seen, for unwrapping.
    last_ext: Option<u64>,
    consecutive_missing: usize,
    pub stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(frame_ts: u32, depth: usize, capacity: usize) -> Self {
        let capacity = capacity.max(depth + 1);
        JitterBuffer {
            depth: depth.max(1),
            capacity,
            frame_ts: frame_ts.max(1),
            frames: VecDeque::with_capacity(capacity + 1),
            out: Vec::new(),
            spare: Vec::new(),
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

    /// Where a frame with this timestamp is or would go: `Ok` when one is buffered.
    fn find(&self, ext: u64) -> Result<usize, usize> {
        // Packets usually arrive in order: check the newest first.
        match self.frames.back() {
            None => Err(0),
            Some(&(last, _)) if last < ext => Err(self.frames.len()),
            _ => self.frames.binary_search_by_key(&ext, |f| f.0),
        }
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
        let at = match self.find(ext) {
            Ok(_) => {
                self.stats.duplicates += 1;
                return;
            }
            Err(at) => at,
        };
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        self.frames.insert(at, (ext, buf));
        while self.frames.len() > self.capacity {
            let (first, buf) = self.frames.pop_front().expect("non-empty");
            self.spare.push(buf);
            self.stats.overflow += 1;
            if let Some(n) = self.next.as_mut() {
                *n = (*n).max(first + self.frame_ts as u64);
            }
        }
    }

    /// Hands out the buffered frame at `idx` as this tick's frame.
    fn take(&mut self, idx: usize) -> Playout<'_> {
        let (_, buf) = self.frames.remove(idx).expect("index in range");
        let old = std::mem::replace(&mut self.out, buf);
        self.spare.push(old);
        self.consecutive_missing = 0;
        Playout::Frame(&self.out)
    }

    /// Takes the frame for the current tick.
    pub fn pop(&mut self) -> Playout<'_> {
        let next = match self.next {
            Some(n) => n,
            None => {
                if self.frames.len() < self.depth {
                    return Playout::Idle;
                }
                self.frames.front().expect("non-empty").0
            }
        };
        self.next = Some(next + self.frame_ts as u64);
        match self.find(next) {
            Ok(i) => self.take(i),
            Err(i) => {
                // A frame may straddle ticks when the sender's ptime differs: take the
                // first buffered frame that starts inside this tick.
                if self
                    .frames
                    .get(i)
                    .is_some_and(|f| f.0 < next + self.frame_ts as u64)
                {
                    return self.take(i);
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
        assert_eq!(j.pop(), Playout::Frame(&frame(1)));
        assert_eq!(j.pop(), Playout::Frame(&frame(2)));
        assert_eq!(j.pop(), Playout::Missing);
        j.push(480, &frame(3)); // late: its slot has passed
        assert_eq!(j.stats.late, 1);
        j.push(640, &frame(4));
        j.push(640, &frame(4));
        assert_eq!(j.stats.duplicates, 1);
        assert_eq!(j.pop(), Playout::Frame(&frame(4)));
    }

    #[test]
    fn timestamp_wraparound() {
        let mut j = JitterBuffer::new(160, 1, 10);
        let start = u32::MAX - 159;
        j.push(start, &frame(1));
        j.push(start.wrapping_add(160), &frame(2));
        j.push(start.wrapping_add(320), &frame(3));
        assert_eq!(j.pop(), Playout::Frame(&frame(1)));
        assert_eq!(j.pop(), Playout::Frame(&frame(2)));
        assert_eq!(j.pop(), Playout::Frame(&frame(3)));
    }

    #[test]
    fn overflow_drops_oldest_and_silence_reprimes() {
        let mut j = JitterBuffer::new(160, 1, 3);
        for i in 0..6u32 {
            j.push(i * 160, &frame(i as u8));
        }
        assert_eq!(j.stats.overflow, 3);
        assert_eq!(j.pop(), Playout::Frame(&frame(3)));
        j.pop();
        j.pop();
        for _ in 0..4 {
            j.pop();
        }
        assert_eq!(j.pop(), Playout::Idle);
        j.push(100_000, &frame(9));
        assert_eq!(j.pop(), Playout::Frame(&frame(9)));
    }

    #[test]
    fn reorders_inside_the_buffer_and_reuses_its_buffers() {
        let mut j = JitterBuffer::new(160, 3, 10);
        for i in [1u32, 3, 2] {
            j.push(i * 160, &frame(i as u8));
        }
        for i in 1..=3u8 {
            assert_eq!(j.pop(), Playout::Frame(&frame(i)));
        }
        // A long call: the buffers go round, none is added per packet.
        let buffers = |j: &JitterBuffer| j.frames.len() + j.spare.len();
        let before = buffers(&j);
        for i in 4..1000u32 {
            j.push(i * 160, &frame(i as u8));
            assert_eq!(j.pop(), Playout::Frame(&frame(i as u8)));
        }
        assert_eq!(buffers(&j), before);
    }

    #[test]
    fn a_frame_that_starts_inside_the_tick_is_played() {
        // The sender's frames are 30 ms (240) on a 20 ms (160) clock.
        let mut j = JitterBuffer::new(160, 1, 10);
        j.push(0, &frame(1));
        j.push(240, &frame(2));
        assert_eq!(j.pop(), Playout::Frame(&frame(1)));
        assert_eq!(
            j.pop(),
            Playout::Frame(&frame(2)),
            "240 starts inside 160..320"
        );
    }
}
