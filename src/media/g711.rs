//! G.711 µ-law and A-law (ITU-T G.711), table-free encoders and decoders.

/// Decodes one µ-law byte to 16-bit linear PCM.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let magnitude = ((((mantissa as i32) << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Encodes 16-bit linear PCM to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - ((s as u32) << 17).leading_zeros().min(7)) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one A-law byte to 16-bit linear PCM.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

/// Encodes 16-bit linear PCM to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(32767);
    let out = if s < 256 {
        (s >> 4) as u8
    } else {
        let exponent = (31 - (s as u32).leading_zeros()) as i32 - 7;
        let mantissa = (s >> (exponent + 3)) & 0x0f;
        ((exponent << 4) | mantissa) as u8
    };
    (out | sign) ^ 0x55
}

/// The G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.clear();
        match self {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
    }

    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.clear();
        match self {
            Law::Ulaw => out.extend(bytes.iter().map(|&b| ulaw_to_linear(b))),
            Law::Alaw => out.extend(bytes.iter().map(|&b| alaw_to_linear(b))),
        }
    }

    #[inline]
    pub fn encode_one(self, s: i16) -> u8 {
        match self {
            Law::Ulaw => linear_to_ulaw(s),
            Law::Alaw => linear_to_alaw(s),
        }
    }

    #[inline]
    pub fn decode_one(self, b: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_to_linear(b),
            Law::Alaw => alaw_to_linear(b),
        }
    }

    /// The code for digital silence.
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xff,
            Law::Alaw => 0xd5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(linear_to_alaw(0), 0xd5);
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            let u = ulaw_to_linear(b);
            // 0x7f and 0xff both decode to 0; the encoder picks 0xff.
            if b != 0x7f {
                assert_eq!(linear_to_ulaw(u), b, "ulaw {b:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let eu = (ulaw_to_linear(linear_to_ulaw(s)) as i32 - s as i32).abs();
            let ea = (alaw_to_linear(linear_to_alaw(s)) as i32 - s as i32).abs();
            let bound = (s as i32).abs() / 16 + 140;
            assert!(eu <= bound && ea <= bound, "s={s} eu={eu} ea={ea}");
        }
    }
}
