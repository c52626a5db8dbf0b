//! SIP parser throughput on a realistic mix (INVITE with SDP, 100, 180, 200 with SDP, ACK,
//! BYE, 200, REGISTER with digest). Prints messages per second on one core: the median of
//! several runs, for parse alone, parse + validation, and serialization.
//!
//!   cargo bench --bench sip_parse

use std::time::{Duration, Instant};
use voxdesk_sip::validate::{validate_request, Capabilities};
use voxdesk_sip::{parse_datagram, Message};

const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

fn mix() -> Vec<Vec<u8>> {
    let invite = format!(
        "INVITE sip:support@voxdesk.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\nTo: <sip:support@voxdesk.example.com>\r\nFrom: \"Alice Caller\" <sip:+14155550100@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.net\r\nCSeq: 314159 INVITE\r\nContact: <sip:+14155550100@198.51.100.7:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\nSupported: timer, replaces\r\nSession-Expires: 1800;refresher=uac\r\n\
User-Agent: CarrierSBC/4.2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let base = "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport=5060;received=198.51.100.7\r\n\
To: <sip:support@voxdesk.example.com>;tag=a6c85cf\r\nFrom: \"Alice Caller\" <sip:+14155550100@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.net\r\n";
    let trying =
        format!("SIP/2.0 100 Trying\r\n{base}CSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n");
    let ringing = format!("SIP/2.0 180 Ringing\r\n{base}CSeq: 314159 INVITE\r\nContact: <sip:voxdesk@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n");
    let ok = format!(
        "SIP/2.0 200 OK\r\n{base}CSeq: 314159 INVITE\r\nContact: <sip:voxdesk@192.0.2.10:5060>\r\nSupported: timer\r\n\
Session-Expires: 1800;refresher=uac\r\nRequire: timer\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let ack = "ACK sip:voxdesk@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhdt\r\nMax-Forwards: 70\r\n\
To: <sip:support@voxdesk.example.com>;tag=a6c85cf\r\nFrom: \"Alice Caller\" <sip:+14155550100@carrier.example.net>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.net\r\nCSeq: 314159 ACK\r\nContent-Length: 0\r\n\r\n"
        .to_string();
    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("314159 ACK", "314160 BYE")
        .replace("hdt", "hdu");
    let bye_ok = format!("SIP/2.0 200 OK\r\n{base}CSeq: 314160 BYE\r\nContent-Length: 0\r\n\r\n");
    let register = "REGISTER sip:voxdesk.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.2.3:5062;branch=z9hG4bKnashds7;rport\r\n\
Max-Forwards: 70\r\nTo: \"Agent One\" <sip:agent1@voxdesk.example.com>\r\nFrom: \"Agent One\" <sip:agent1@voxdesk.example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\nContact: <sip:agent1@10.1.2.3:5062;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"agent1\", realm=\"voxdesk\", nonce=\"6553f1a2.9b2c\", uri=\"sip:voxdesk.example.com\", \
response=\"7bd6c1e3a9a44b7bc1c1a9e1f9cc4cd1\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n\
User-Agent: baresip v1.0.0\r\nContent-Length: 0\r\n\r\n"
        .to_string();
    [invite, trying, ringing, ok, ack, bye, bye_ok, register]
        .into_iter()
        .map(String::into_bytes)
        .collect()
}

fn rate(name: &str, msgs: &[Vec<u8>], mut f: impl FnMut(&[u8])) {
    let mut rates = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(700) {
            for m in msgs {
                f(m);
            }
            n += msgs.len() as u64;
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:<28} median {:>10.0} msg/s   (min {:.0}, max {:.0}, 7 runs, 1 thread)",
        rates[3], rates[0], rates[6]
    );
}

fn main() {
    let msgs = mix();
    if let Some(n) = std::env::var("SIP_PARSE_COUNT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        for i in 0..n {
            std::hint::black_box(
                parse_datagram(std::hint::black_box(&msgs[i % msgs.len()])).unwrap(),
            );
        }
        return;
    }
    let avg = msgs.iter().map(Vec::len).sum::<usize>() / msgs.len();
    println!(
        "sip_parse: {} message kinds, average {avg} bytes",
        msgs.len()
    );
    rate("parse", &msgs, |m| {
        std::hint::black_box(parse_datagram(std::hint::black_box(m)).unwrap());
    });
    if std::env::var_os("SIP_PARSE_ONLY").is_some() {
        return;
    }
    let caps = Capabilities::default();
    rate("parse + validate", &msgs, |m| {
        let msg = parse_datagram(m).unwrap();
        if msg.is_request() {
            std::hint::black_box(validate_request(&msg, &caps).is_ok());
        } else {
            std::hint::black_box(voxdesk_sip::validate::validate_response(&msg).is_ok());
        }
    });
    let parsed: Vec<Message> = msgs.iter().map(|m| parse_datagram(m).unwrap()).collect();
    let mut i = 0;
    rate("serialize", &msgs, |_| {
        std::hint::black_box(parsed[i % parsed.len()].to_bytes());
        i += 1;
    });
}
