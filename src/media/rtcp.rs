//! RTCP sender/receiver reports (RFC 3550 §6.4) and reception statistics (§A.3, §A.8).

/// Reception statistics for one remote source.
#[derive(Debug, Default, Clone)]
pub struct RecvStats {
    pub ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    pub received: u64,
    started: bool,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units (Q4 fixed point, as in RFC 3550 A.8).
    jitter_q4: u32,
    last_transit: Option<i64>,
    /// Middle 32 bits of the NTP timestamp of the last SR received, and when it arrived (ms).
    pub last_sr: Option<(u32, u64)>,
    /// Losses of earlier sources (the remote changed SSRC), kept across resets.
    pub prior_lost: i64,
}

impl RecvStats {
    /// Updates for one packet: `arrival_ts` is the arrival time in RTP timestamp units.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, arrival_ts: u32) {
        if !self.started || ssrc != self.ssrc {
            let prior_lost = if self.started {
                self.prior_lost + self.cumulative_lost().max(0)
            } else {
                0
            };
            *self = RecvStats {
                ssrc,
                base_seq: seq as u32,
                max_seq: seq,
                started: true,
                prior_lost,
                ..Default::default()
            };
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta != 0 && delta < 0x8000 {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        }
        self.received += 1;
        let transit = arrival_ts as i64 - rtp_ts as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as u32;
            // J += (|D| - J) / 16, in Q4.
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d.wrapping_sub((self.jitter_q4 + 8) >> 4));
        }
        self.last_transit = Some(transit);
    }

    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles + self.max_seq as u32
    }

    pub fn expected(&self) -> u64 {
        (self.extended_max() as u64 + 1).saturating_sub(self.base_seq as u64)
    }

    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// A report block, updating the "since last report" counters.
    pub fn report_block(&mut self, now_ms: u64) -> [u8; 24] {
        let expected = self.expected();
        let exp_int = expected - self.expected_prior.min(expected);
        let rec_int = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_int = exp_int.saturating_sub(rec_int);
        let fraction = (lost_int << 8).checked_div(exp_int).unwrap_or(0).min(255) as u8;
        let lost = self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32;
        let (lsr, dlsr) = match self.last_sr {
            Some((mid, at)) => (mid, (((now_ms.saturating_sub(at)) * 65536) / 1000) as u32),
            None => (0, 0),
        };
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        b[4] = fraction;
        b[5..8].copy_from_slice(&lost.to_be_bytes()[1..4]);
        b[8..12].copy_from_slice(&self.extended_max().to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter().to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        b
    }
}

/// NTP timestamp (seconds since 1900, 32.32 fixed) for a Unix time in microseconds.
pub fn ntp_from_unix_micros(us: u64) -> u64 {
    let secs = us / 1_000_000 + 2_208_988_800;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// Builds a compound SR (+ one report block if `block` is given) + SDES CNAME.
#[allow(clippy::too_many_arguments)]
pub fn sender_report(
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    block: Option<[u8; 24]>,
    cname: &str,
) -> Vec<u8> {
    let rc = block.is_some() as u8;
    let words = 6 + 6 * rc as u16;
    let mut v = Vec::with_capacity(80);
    v.push(0x80 | rc);
    v.push(200);
    v.extend_from_slice(&words.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&ntp.to_be_bytes());
    v.extend_from_slice(&rtp_ts.to_be_bytes());
    v.extend_from_slice(&packets.to_be_bytes());
    v.extend_from_slice(&octets.to_be_bytes());
    if let Some(b) = block {
        v.extend_from_slice(&b);
    }
    // SDES with one CNAME item, padded to a 32-bit boundary.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let mut chunk = Vec::new();
    chunk.extend_from_slice(&ssrc.to_be_bytes());
    chunk.push(1);
    chunk.push(name.len() as u8);
    chunk.extend_from_slice(name);
    chunk.push(0);
    while chunk.len() % 4 != 0 {
        chunk.push(0);
    }
    v.push(0x81);
    v.push(202);
    v.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
    v.extend_from_slice(&chunk);
    v
}

/// What a received compound RTCP packet said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RtcpInfo {
    /// (sender SSRC, middle 32 bits of its NTP timestamp) of a sender report.
    pub sender_report: Option<(u32, u32)>,
    /// Report blocks about our stream: (fraction lost /256, cumulative lost, jitter).
    pub blocks: Vec<(u8, i32, u32)>,
    pub bye: bool,
}

/// Parses a compound RTCP packet; malformed input yields `None`.
pub fn parse(b: &[u8]) -> Option<RtcpInfo> {
    let mut info = RtcpInfo::default();
    let mut off = 0;
    let mut any = false;
    while off + 4 <= b.len() {
        if b[off] >> 6 != 2 {
            return None;
        }
        let count = (b[off] & 0x1f) as usize;
        let pt = b[off + 1];
        let len = (u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize + 1) * 4;
        if off + len > b.len() {
            return None;
        }
        let p = &b[off..off + len];
        let blocks_at = match pt {
            200 if p.len() >= 28 => {
                let ssrc = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                let mid = u32::from_be_bytes([p[10], p[11], p[12], p[13]]);
                info.sender_report = Some((ssrc, mid));
                Some(28)
            }
            201 if p.len() >= 8 => Some(8),
            203 => {
                info.bye = true;
                None
            }
            _ => None,
        };
        if let Some(start) = blocks_at {
            for i in 0..count {
                let s = start + i * 24;
                if s + 24 > p.len() {
                    break;
                }
                let q = &p[s..s + 24];
                let lost =
                    i32::from_be_bytes([if q[5] & 0x80 != 0 { 0xff } else { 0 }, q[5], q[6], q[7]]);
                info.blocks
                    .push((q[4], lost, u32::from_be_bytes([q[12], q[13], q[14], q[15]])));
            }
        }
        any = true;
        off += len;
    }
    any.then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_loss_and_report_round_trip() {
        let mut s = RecvStats::default();
        for seq in [65533u16, 65534, 65535, 1, 2] {
            // seq 0 lost across the wrap
            s.on_packet(7, seq, seq as u32 * 160, seq as u32 * 160);
        }
        assert_eq!(s.expected(), 6);
        assert_eq!(s.cumulative_lost(), 1);
        let block = s.report_block(0);
        let sr = sender_report(
            9,
            ntp_from_unix_micros(1_700_000_000_000_000),
            1234,
            10,
            1600,
            Some(block),
            "voxdesk@test",
        );
        assert_eq!(sr.len() % 4, 0);
        let info = parse(&sr).unwrap();
        assert_eq!(info.sender_report.unwrap().0, 9);
        assert_eq!(info.blocks.len(), 1);
        assert_eq!(info.blocks[0].1, 1);
        assert!(info.blocks[0].0 > 0);
        assert!(parse(&[0x80, 200, 0xff, 0xff]).is_none());
        assert!(parse(b"garbage!").is_none());
    }
}
