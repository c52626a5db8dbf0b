//! A media session on real loopback sockets: RFC 4733 digits out and in, symmetric RTP
//! latching, garbage RTP, RTP timeout, prompt playback, recording.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxdesk::media::dtmf::DtmfReceiver;
use voxdesk::media::g711::Law;
use voxdesk::media::leg;
use voxdesk::media::ports::PortPool;
use voxdesk::media::rtp::{self, RtpPacket};
use voxdesk::media::session::{MediaCmd, MediaEvent, MediaSetup, StreamParams};

fn params(remote: SocketAddr) -> StreamParams {
    StreamParams {
        law: Law::Ulaw,
        payload_type: 0,
        dtmf_pt: Some(101),
        remote: Some(remote),
        send: true,
        recv: true,
        remote_ptime_ms: 20,
        srtp: None,
    }
}

/// A loopback leg towards `remote` with a 40 ms jitter buffer.
fn setup(
    pool: &PortPool,
    remote: SocketAddr,
    rtp_timeout: Duration,
    record: Option<std::path::PathBuf>,
) -> MediaSetup {
    MediaSetup {
        lease: pool.lease_bindable("127.0.0.1".parse().unwrap()).unwrap(),
        bind: "127.0.0.1".parse().unwrap(),
        params: params(remote),
        jitter_ms: 40,
        rtp_timeout,
        record,
        cname: "test".into(),
        turn: Default::default(),
        vad: Default::default(),
        source: voxdesk::media::source::SourcePolicy::open(),
    }
}

/// A leg towards `remote` (30 s RTP timeout, no recording): its handle, its RTP address and
/// its events.
async fn start_leg(
    pool: &PortPool,
    remote: SocketAddr,
) -> (
    leg::MediaHandle,
    SocketAddr,
    tokio::sync::mpsc::Receiver<MediaEvent>,
) {
    let (ev_tx, ev_rx) = tokio::sync::mpsc::channel(64);
    let m = leg::start(setup(pool, remote, Duration::from_secs(30), None), ev_tx)
        .await
        .unwrap();
    let ours: SocketAddr = format!("127.0.0.1:{}", m.port).parse().unwrap();
    (m, ours, ev_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_latching_garbage_timeout_and_recording() {
    let dir = tempfile::tempdir().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // The SDP said one port; the peer really sends from another (NAT): we must latch.
    let sdp_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let pool = PortPool::new(36000, 36100);
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel(32);
    let rec = dir.path().join("call.wav");
    let m = leg::start(
        setup(
            &pool,
            sdp_addr,
            Duration::from_millis(600),
            Some(rec.clone()),
        ),
        ev_tx,
    )
    .await
    .unwrap();
    let ours: SocketAddr = format!("127.0.0.1:{}", m.port).parse().unwrap();
    // Garbage first: ignored, no latch.
    peer.send_to(b"\x00\x01garbage", ours).unwrap();
    // Then 40 packets of a 1 kHz tone at -6 dBFS, then '5' as RFC 4733.
    let mut buf = Vec::new();
    for i in 0..40u32 {
        let pcm: Vec<i16> = (0..160)
            .map(|k| {
                (((i * 160 + k) as f32 * 2.0 * std::f32::consts::PI / 8.0).sin() * 16000.0) as i16
            })
            .collect();
        let mut enc = Vec::new();
        Law::Ulaw.encode(&pcm, &mut enc);
        rtp::build(&mut buf, i == 0, 0, i as u16, i * 160, 77, &enc);
        peer.send_to(&buf, ours).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    for (k, (marker, ev)) in voxdesk::media::dtmf::digit_packets('5', 60)
        .into_iter()
        .enumerate()
    {
        rtp::build(&mut buf, marker, 101, 40 + k as u16, 40 * 160, 77, &ev);
        peer.send_to(&buf, ours).unwrap();
    }
    let mut latched = false;
    let mut digit = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && digit.is_none() {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), ev_rx.recv()).await {
            match e {
                MediaEvent::Latched(a) => latched = a == peer.local_addr().unwrap(),
                MediaEvent::Dtmf(d) => digit = Some(d),
                _ => {}
            }
        }
    }
    assert!(latched, "latched onto the real source");
    assert_eq!(digit, Some('5'));
    // Our RTP now comes to the peer's real address; send a digit and decode it there.
    m.cmd.send(MediaCmd::SendDigit('#')).await.unwrap();
    m.cmd
        .send(MediaCmd::Play(Arc::new(vec![8000; 1600])))
        .await
        .unwrap();
    let got = tokio::task::spawn_blocking(move || {
        let mut r = DtmfReceiver::default();
        let mut b = [0u8; 2048];
        let end = Instant::now() + Duration::from_secs(3);
        let mut digits = Vec::new();
        let mut loud = 0;
        while Instant::now() < end {
            if let Ok((n, _)) = peer.recv_from(&mut b) {
                let p = RtpPacket::parse(&b[..n]).unwrap();
                if p.payload_type == 101 {
                    digits.extend(r.on_packet(p.timestamp, p.payload));
                } else if p
                    .payload
                    .iter()
                    .any(|&c| voxdesk::media::g711::ulaw_to_linear(c).abs() > 4000)
                {
                    loud += 1;
                }
            }
            if !digits.is_empty() && loud > 5 {
                break;
            }
        }
        (digits, loud)
    })
    .await
    .unwrap();
    assert_eq!(got.0, vec!['#'], "RFC 4733 digit sent once");
    assert!(got.1 > 5, "the prompt is played to the latched address");
    // Silence from the peer: one RtpTimeout event.
    let timeout = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(MediaEvent::RtpTimeout) = ev_rx.recv().await {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(timeout, "RTP timeout reported");
    m.cmd.send(MediaCmd::Stop).await.unwrap();
    let summary = m.done.await.unwrap();
    assert!(summary.packets_in >= 40, "{summary:?}");
    assert!(summary.packets_out > 20, "{summary:?}");
    // The recording holds the tone on the left channel.
    let mut r = hound::WavReader::open(&rec).unwrap();
    assert_eq!(r.spec().channels, 2);
    let left_peak = r
        .samples::<i16>()
        .step_by(2)
        .map(|s| s.unwrap().unsigned_abs())
        .max()
        .unwrap();
    assert!(left_peak > 10_000, "tone recorded: peak {left_peak}");
}

/// A leg reads one datagram a tick, with a full drain every tenth: a burst (a network stall
/// let go, or a remote that sends faster than one packet a tick) is still read within a few
/// hundred ms; and a leg whose every command sender is gone ends by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_read_soon_and_a_leg_without_senders_ends() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pool = PortPool::new(36200, 36300);
    let (m, ours, _ev_rx) = start_leg(&pool, peer.local_addr().unwrap()).await;
    let mut buf = Vec::new();
    for i in 0..50u32 {
        rtp::build(&mut buf, false, 0, i as u16, i * 160, 77, &[0xff; 160]);
        peer.send_to(&buf, ours).unwrap();
    }
    // 50 packets at once: single reads would take a second; the drains take them within
    // ~200 ms (and keep draining every tick while a backlog shows).
    tokio::time::sleep(Duration::from_millis(450)).await;
    let leg::MediaHandle { cmd, done, .. } = m;
    drop(cmd); // no Stop: dropping the last sender must end the leg
    let summary = tokio::time::timeout(Duration::from_secs(3), done)
        .await
        .expect("the leg ends once its senders are gone")
        .unwrap();
    assert_eq!(summary.packets_in, 50, "{summary:?}");
}

/// Symmetric RTP with a connected socket: a second source is not heard while the latched one
/// sends; once the latched one has been silent for 500 ms a new source (NAT rebinding)
/// takes over, and our audio follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_source_takes_over_once_the_latched_one_falls_silent() {
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&first, &second] {
        s.set_nonblocking(true).unwrap();
    }
    let pool = PortPool::new(36400, 36500);
    let (m, ours, mut ev_rx) = start_leg(&pool, first.local_addr().unwrap()).await;
    let mut buf = Vec::new();
    let mut seq = 0u16;
    let mut send = |from: &UdpSocket, n: u32| {
        for _ in 0..n {
            rtp::build(&mut buf, false, 0, seq, seq as u32 * 160, 77, &[0xff; 160]);
            from.send_to(&buf, ours).unwrap();
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Both send; the first is latched (it is also the SDP's address) and the second's
    // packets are not counted.
    send(&first, 10);
    for _ in 0..10 {
        send(&first, 1);
        let mut other = Vec::new();
        rtp::build(&mut other, false, 0, 999, 0, 88, &[0xff; 160]);
        second.send_to(&other, ours).unwrap();
    }
    // The first falls silent; 600 ms later the second takes over.
    std::thread::sleep(Duration::from_millis(600));
    send(&second, 10);
    let mut latched = None;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), ev_rx.recv()).await {
        if let MediaEvent::Latched(a) = e {
            latched = Some(a);
        }
    }
    assert_eq!(latched, Some(second.local_addr().unwrap()));
    // Our audio now goes to the second source only.
    let drain = |s: &UdpSocket| {
        let mut b = [0u8; 2048];
        let mut n = 0;
        while s.recv_from(&mut b).is_ok() {
            n += 1;
        }
        n
    };
    drain(&first);
    drain(&second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(drain(&first), 0, "nothing goes to the old source");
    assert!(drain(&second) >= 5, "our RTP follows the new source");
    m.cmd.send(MediaCmd::Stop).await.unwrap();
    let summary = m.done.await.unwrap();
    assert_eq!(summary.packets_in, 30, "{summary:?}");
}
