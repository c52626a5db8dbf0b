//! RTP packets (RFC 3550 §5.1): parse and build.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet too short")]
    Short,
    #[error("not RTP version 2")]
    Version,
    #[error("bad padding")]
    Padding,
}

/// A parsed RTP packet borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    pub fn parse(b: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::Short);
        }
        if b[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let padding = b[0] & 0x20 != 0;
        let ext = b[0] & 0x10 != 0;
        let cc = (b[0] & 0x0f) as usize;
        let mut off = 12 + cc * 4;
        if b.len() < off {
            return Err(RtpError::Short);
        }
        if ext {
            if b.len() < off + 4 {
                return Err(RtpError::Short);
            }
            let words = u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize;
            off += 4 + words * 4;
            if b.len() < off {
                return Err(RtpError::Short);
            }
        }
        let mut end = b.len();
        if padding {
            let p = b[end - 1] as usize;
            if p == 0 || off + p > end {
                return Err(RtpError::Padding);
            }
            end -= p;
        }
        Ok(RtpPacket {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7f,
            seq: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: &b[off..end],
        })
    }
}

/// Writes an RTP packet into `out` (cleared first).
pub fn build(
    out: &mut Vec<u8>,
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.push(0x80);
    out.push((if marker { 0x80 } else { 0 }) | (pt & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut b = Vec::new();
        build(&mut b, true, 0, 65535, 160, 0xdeadbeef, &[1, 2, 3]);
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.seq, p.timestamp, p.ssrc, p.payload),
            (65535, 160, 0xdeadbeef, &[1u8, 2, 3][..])
        );
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::Short));
        assert_eq!(RtpPacket::parse(&[0x40; 20]), Err(RtpError::Version));
        // CSRC count claims more than present.
        let mut c = b.clone();
        c[0] = 0x8f;
        assert_eq!(RtpPacket::parse(&c), Err(RtpError::Short));
        // Padding larger than the packet.
        let mut d = b.clone();
        d[0] |= 0x20;
        *d.last_mut().unwrap() = 200;
        assert_eq!(RtpPacket::parse(&d), Err(RtpError::Padding));
    }
}
