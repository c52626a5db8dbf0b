//! RFC 4733 telephone-events: receiving (with retransmission de-duplication) and sending.

/// The digit for an RFC 4733 event code.
pub fn event_char(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        16 => '!',
        _ => return None,
    })
}

pub fn char_event(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => c as u8 - b'A' + 12,
        _ => return None,
    })
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl Event {
    pub fn parse(p: &[u8]) -> Option<Event> {
        if p.len() < 4 {
            return None;
        }
        Some(Event {
            code: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.code,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// Turns a stream of event packets into digits, once per event (RFC 4733 §2.5.1).
#[derive(Default)]
pub struct DtmfReceiver {
    /// (RTP timestamp, event code) of the event last reported.
    current: Option<(u32, u8)>,
}

impl DtmfReceiver {
    /// Feeds one packet; returns a digit when an event starts (reported once, on first sight).
    pub fn on_packet(&mut self, rtp_ts: u32, payload: &[u8]) -> Option<char> {
        let ev = Event::parse(payload)?;
        // Packets of one event share its timestamp; a new timestamp or code is a new event.
        if self.current == Some((rtp_ts, ev.code)) {
            return None;
        }
        self.current = Some((rtp_ts, ev.code));
        event_char(ev.code)
    }
}

/// The payloads to send for one digit: (marker, payload) per 20 ms packet, all with the
/// same RTP timestamp; the end packet is sent three times (RFC 4733 §2.5.1.4).
pub fn digit_packets(digit: char, duration_ms: u32) -> Vec<(bool, [u8; 4])> {
    let Some(code) = char_event(digit) else {
        return Vec::new();
    };
    let steps = (duration_ms / 20).max(1);
    let mut v = Vec::new();
    for i in 1..=steps {
        let ev = Event {
            code,
            end: false,
            volume: 10,
            duration: (i * 160).min(65535) as u16,
        };
        v.push((i == 1, ev.to_bytes()));
    }
    let end = Event {
        code,
        end: true,
        volume: 10,
        duration: (steps * 160).min(65535) as u16,
    };
    for _ in 0..3 {
        v.push((false, end.to_bytes()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_report_one_digit_each() {
        let mut r = DtmfReceiver::default();
        let pk = digit_packets('#', 100);
        let digits: Vec<char> = pk
            .iter()
            .filter_map(|(_, p)| r.on_packet(8000, p))
            .collect();
        assert_eq!(digits, ['#']);
        let digits: Vec<char> = digit_packets('5', 60)
            .iter()
            .filter_map(|(_, p)| r.on_packet(9600, p))
            .collect();
        assert_eq!(digits, ['5']);
        assert_eq!(r.on_packet(1, &[1, 2]), None, "short payload ignored");
        // Two digits that reuse one timestamp (as some senders do) are still two events.
        let digits: Vec<char> = ['1', '#']
            .iter()
            .flat_map(|d| digit_packets(*d, 60))
            .filter_map(|(_, p)| r.on_packet(77, &p))
            .collect();
        assert_eq!(digits, ['1', '#']);
        assert_eq!(event_char(200), None);
    }
}
