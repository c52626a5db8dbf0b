#![no_main]
//! RTP, RTCP, RFC 4733 telephone-events and the jitter buffer on arbitrary datagrams. The
//! parsers are pulled in by path: they depend on nothing else of the server crate, and the
//! server crate itself (whisper.cpp, ONNX Runtime) is too heavy to build instrumented.
#[allow(dead_code)]
#[path = "../../src/media/rtp.rs"]
mod rtp;
#[allow(dead_code)]
#[path = "../../src/media/rtcp.rs"]
mod rtcp;
#[allow(dead_code)]
#[path = "../../src/media/dtmf.rs"]
mod dtmf;
#[allow(dead_code)]
#[path = "../../src/media/jitter.rs"]
mod jitter;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rtcp::parse(data);
    let mut rx = dtmf::DtmfReceiver::default();
    let mut jb = jitter::JitterBuffer::new(160, 3, 22);
    let mut stats = rtcp::RecvStats::default();
    // The input as a run of datagrams: a length byte, then that many bytes.
    let mut rest = data;
    let mut arrival = 0u32;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        let (pkt, tail) = tail.split_at(n);
        rest = tail;
        arrival = arrival.wrapping_add(160);
        if let Ok(p) = rtp::RtpPacket::parse(pkt) {
            let _ = rx.on_packet(p.timestamp, p.payload);
            let _ = dtmf::Event::parse(p.payload);
            stats.on_packet(p.ssrc, p.seq, p.timestamp, arrival);
            jb.push(p.timestamp, p.payload);
            let _ = jb.pop();
        }
        let _ = rtcp::parse(pkt);
    }
    let _ = stats.report_block(1000);
    let _ = stats.cumulative_lost();
});
