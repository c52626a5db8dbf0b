//! Call setup and media relay figures.
//!
//! 1. Call setup: the real voxdesk binary on loopback, sipp placing INVITE -> 200 -> ACK ->
//!    BYE calls at increasing rates; prints completed calls/s, failures and server CPU per call.
//! 2. RTP relay: N bridged call pairs (two media legs each, G.711 both ways) inside this
//!    process, fed by a load generator on other threads; prints relayed packets/s, the CPU the
//!    media runtime used (its own threads only), packets/s per core and the jitter the relay
//!    adds (p50/p99 of |inter-arrival - 20 ms| at the far end). Last, the same generator
//!    against a thread that makes only the legs' system calls (read one datagram, send one,
//!    per leg per 20 ms): the ceiling for one socket per leg on this machine, to set voxdesk's
//!    figure against.
//!
//!   cargo bench --bench call_setup            (VOXDESK_BENCH_QUICK=1 for a short run;
//!                                             VOXDESK_BENCH_RELAY=500,1000: relay only)

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use voxdesk::media::g711::Law;
use voxdesk::media::leg;
use voxdesk::media::ports::PortPool;
use voxdesk::media::session::{MediaCmd, MediaSetup, Party, StreamParams};

mod support;
use support::{cpu_seconds, free_port, sipp_count, sipp_installed};

fn quick() -> bool {
    std::env::var_os("VOXDESK_BENCH_QUICK").is_some()
}

/// `/proc/self/task/N/stat` of the threads doing the relay's work.
fn media_threads() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.starts_with("voxdesk-media") || comm.starts_with("tokio-runtime") {
            out.push(e.path().join("stat").display().to_string());
        }
    }
    out
}

fn call_setup() {
    println!("== call setup: voxdesk + sipp on loopback (INVITE/200/ACK/BYE/200, no media) ==");
    if !sipp_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("voxdesk.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sip]\nbind = \"127.0.0.1\"\nport = {port}\nring_ms = 0\n[media]\nrtp_port_min = 40000\nrtp_port_max = 59999\nrecord = false\n[speech]\nenabled = false\n[api]\nport = 0\n[paths]\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut server = Command::new(
        std::env::var("VOXDESK_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_voxdesk").into()),
    )
    .args(["serve", "--log", "warn", "--config"])
    .arg(&cfg)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let stat = format!("/proc/{}/stat", server.id());
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/uac_bench.xml");
    let rates: &[u32] = if quick() {
        &[100]
    } else {
        &[100, 200, 400, 800]
    };
    for &rate in rates {
        let total = if quick() { 300 } else { rate * 10 };
        let cpu0 = cpu_seconds(&stat);
        let t0 = Instant::now();
        let out = Command::new("sipp")
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "-sf",
                scenario,
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-nostdin",
                "-timeout",
                "120",
            ])
            .args([
                "-r",
                &rate.to_string(),
                "-m",
                &total.to_string(),
                "-l",
                "2000",
                "-max_socket",
                "4000",
            ])
            .output()
            .unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(&stat) - cpu0;
        let text = String::from_utf8_lossy(&out.stdout);
        let ok = sipp_count(&text, "Successful call");
        let failed = sipp_count(&text, "Failed call");
        println!(
            "offered {rate:>4} calls/s x {total:>5}: completed {:>7.1} calls/s, {ok} ok, {failed} failed, server CPU {:.2} ms/call ({:.0}% of a core)",
            ok as f64 / wall,
            cpu * 1000.0 / ok.max(1) as f64,
            cpu / wall * 100.0
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(172);
    voxdesk::media::rtp::build(&mut b, false, pt, seq, ts, ssrc, &[0x55; 160]);
    b
}

/// What relays the packets between the generator's sockets.
#[derive(Clone, Copy, PartialEq)]
enum Relay {
    /// voxdesk's media legs; `transcode`: the agent leg speaks PCMA, the caller's PCMU
    /// (every packet re-encoded).
    Voxdesk { transcode: bool },
    /// The system calls alone: one thread that, every 20 ms, reads one datagram from each
    /// leg's socket (to the end every 10th tick) and sends one packet back, as the legs do,
    /// with no other work. Its calls per core is the ceiling for one socket per leg here.
    /// `connected`: the sockets are connected to their remote, as voxdesk's legs are once
    /// they have latched.
    Floor { connected: bool },
}

/// The floor relay's sockets: each leg's own socket and where its packets go.
type FloorLegs = Vec<(UdpSocket, SocketAddr)>;

/// A thread that does only the legs' system calls (see `Relay::Floor`) until `stop`.
fn floor_relay(
    legs: FloorLegs,
    connected: bool,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("voxdesk-media-floor".into())
        .spawn(move || {
            let start = Instant::now();
            let mut buf = [0u8; 2048];
            let mut pkt = Vec::with_capacity(200);
            let mut tick = 0u32;
            if connected {
                for (sock, remote) in &legs {
                    sock.connect(remote).unwrap();
                }
            }
            while !stop.load(Ordering::Relaxed) {
                let full = tick.is_multiple_of(10);
                for (i, (sock, remote)) in legs.iter().enumerate() {
                    for _ in 0..if full { 64 } else { 1 } {
                        if sock.recv_from(&mut buf).is_err() {
                            break;
                        }
                    }
                    voxdesk::media::rtp::build(
                        &mut pkt,
                        false,
                        0,
                        tick as u16,
                        tick * 160,
                        i as u32,
                        &buf[12..172],
                    );
                    let _ = if connected {
                        sock.send(&pkt)
                    } else {
                        sock.send_to(&pkt, remote)
                    };
                }
                tick += 1;
                let next = start + Duration::from_millis(20 * tick as u64);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        })
        .unwrap()
}

fn relay(calls: usize, seconds: u64, mode: Relay) {
    let transcode = mode == Relay::Voxdesk { transcode: true };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = PortPool::new(20000, 39999);
    let agent_law = if transcode { Law::Alaw } else { Law::Ulaw };
    let agent_pt = if transcode { 8 } else { 0 };
    // Per call: generator sockets gA (caller) and gB (agent); legs A and B bridged.
    let mut gens: Vec<(UdpSocket, SocketAddr, UdpSocket, SocketAddr)> = Vec::new();
    let mut handles = Vec::new();
    let mut floor_legs: FloorLegs = Vec::new();
    for _ in 0..calls {
        let ga = UdpSocket::bind("127.0.0.1:0").unwrap();
        let gb = UdpSocket::bind("127.0.0.1:0").unwrap();
        ga.set_nonblocking(true).unwrap();
        gb.set_nonblocking(true).unwrap();
        if let Relay::Floor { .. } = mode {
            let mut ports = [0u16; 2];
            for (port, g) in ports.iter_mut().zip([&ga, &gb]) {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_nonblocking(true).unwrap();
                *port = s.local_addr().unwrap().port();
                floor_legs.push((s, g.local_addr().unwrap()));
            }
            let to = |port| SocketAddr::from(([127, 0, 0, 1], port));
            gens.push((ga, to(ports[0]), gb, to(ports[1])));
            continue;
        }
        let mk = |remote: SocketAddr, law: Law| StreamParams {
            law,
            payload_type: if law == Law::Alaw { 8 } else { 0 },
            dtmf_pt: None,
            remote: Some(remote),
            send: true,
            recv: true,
            remote_ptime_ms: 20,
            srtp: None,
        };
        let (a, b) = rt.block_on(async {
            let (etx, _erx) = tokio::sync::mpsc::channel(8);
            let (etx2, _erx2) = tokio::sync::mpsc::channel(8);
            let setup = |remote, lease, law| MediaSetup {
                lease,
                bind: "127.0.0.1".parse().unwrap(),
                params: mk(remote, law),
                jitter_ms: 40,
                rtp_timeout: Duration::from_secs(3600),
                record: None,
                cname: "bench".into(),
                turn: Default::default(),
                vad: Default::default(),
                source: voxdesk::media::source::SourcePolicy::open(),
            };
            let a = leg::start(
                setup(
                    ga.local_addr().unwrap(),
                    pool.lease_bindable("127.0.0.1".parse().unwrap()).unwrap(),
                    Law::Ulaw,
                ),
                etx,
            )
            .await
            .unwrap();
            let b = leg::start(
                setup(
                    gb.local_addr().unwrap(),
                    pool.lease_bindable("127.0.0.1".parse().unwrap()).unwrap(),
                    agent_law,
                ),
                etx2,
            )
            .await
            .unwrap();
            let (t1, r1) = voxdesk::media::link::frame_link();
            let (t2, r2) = voxdesk::media::link::frame_link();
            a.cmd
                .send(MediaCmd::BridgeOut(Party::Agent, Some(t1)))
                .await
                .unwrap();
            b.cmd
                .send(MediaCmd::BridgeIn(Party::Caller, Some(r1)))
                .await
                .unwrap();
            b.cmd
                .send(MediaCmd::BridgeOut(Party::Caller, Some(t2)))
                .await
                .unwrap();
            a.cmd
                .send(MediaCmd::BridgeIn(Party::Agent, Some(r2)))
                .await
                .unwrap();
            std::mem::forget((_erx, _erx2));
            (a, b)
        });
        gens.push((
            ga,
            SocketAddr::from(([127, 0, 0, 1], a.port)),
            gb,
            SocketAddr::from(([127, 0, 0, 1], b.port)),
        ));
        handles.push((a, b));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let floor = match mode {
        Relay::Floor { connected } => Some(floor_relay(floor_legs, connected, stop.clone())),
        Relay::Voxdesk { .. } => None,
    };
    let gens = Arc::new(gens);
    // Generator: every 20 ms one packet per leg.
    let g2 = gens.clone();
    let s2 = stop.clone();
    let generator = std::thread::spawn(move || {
        let start = Instant::now();
        let mut tick = 0u32;
        while !s2.load(Ordering::Relaxed) {
            for (i, (ga, a, gb, b)) in g2.iter().enumerate() {
                let _ = ga.send_to(&rtp_packet(0, tick as u16, tick * 160, i as u32), a);
                let _ = gb.send_to(
                    &rtp_packet(agent_pt, tick as u16, tick * 160, 1_000_000 + i as u32),
                    b,
                );
            }
            tick += 1;
            let next = start + Duration::from_millis(20 * tick as u64);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    });
    // Sink: what the legs send back to the generator sockets (the relayed audio).
    let g3 = gens.clone();
    let s3 = stop.clone();
    let sink = std::thread::spawn(move || {
        let mut last: Vec<Option<Instant>> = vec![None; g3.len() * 2];
        let mut devs: Vec<f64> = Vec::new();
        let mut packets = 0u64;
        let mut buf = [0u8; 2048];
        let measure_from = Instant::now() + Duration::from_secs(2);
        while !s3.load(Ordering::Relaxed) {
            let mut got = false;
            for (i, (ga, _, gb, _)) in g3.iter().enumerate() {
                for (j, s) in [ga, gb].into_iter().enumerate() {
                    while let Ok((n, _)) = s.recv_from(&mut buf) {
                        got = true;
                        let now = Instant::now();
                        if now < measure_from || n < 12 {
                            continue;
                        }
                        packets += 1;
                        let k = i * 2 + j;
                        if let Some(prev) = last[k] {
                            devs.push(((now - prev).as_secs_f64() * 1000.0 - 20.0).abs());
                        }
                        last[k] = Some(now);
                    }
                }
            }
            if !got {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        (packets, devs)
    });
    std::thread::sleep(Duration::from_secs(2));
    // The relay's CPU: the media clock's threads and the runtime's (which only set up here).
    let threads = media_threads();
    let cpu0: f64 = threads.iter().map(cpu_seconds).sum();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = threads.iter().map(cpu_seconds).sum::<f64>() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    generator.join().unwrap();
    if let Some(f) = floor {
        f.join().unwrap();
    }
    let (packets, mut devs) = sink.join().unwrap();
    devs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| {
        devs.get(((devs.len() as f64 * p) as usize).min(devs.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let measured_s = wall + 0.0;
    let pps = packets as f64 / measured_s;
    let cores = cpu / wall;
    println!(
        "{calls:>4} bridged calls{}: relayed {pps:>8.0} pkt/s (expected {}), media CPU {:.2} cores -> {:.0} pkt/s per core, {:.0} calls per core; added jitter p50 {:.2} ms, p99 {:.2} ms",
        match mode {
            Relay::Voxdesk { transcode: true } => " (PCMU<->PCMA)",
            Relay::Voxdesk { .. } => "",
            Relay::Floor { connected: false } => " (system calls only, sockets not connected)",
            Relay::Floor { connected: true } => " (system calls only: the floor)",
        },
        calls * 2 * 50,
        cores,
        pps / cores.max(1e-9),
        calls as f64 / cores.max(1e-9),
        pct(0.5),
        pct(0.99)
    );
    for (a, b) in handles {
        let _ = a.cmd.try_send(MediaCmd::Stop);
        let _ = b.cmd.try_send(MediaCmd::Stop);
    }
    drop(rt);
}

fn main() {
    support::print_machine();
    // VOXDESK_BENCH_RELAY=500,1000: only the relay, at these sizes.
    let only: Vec<usize> = std::env::var("VOXDESK_BENCH_RELAY")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    if only.is_empty() {
        call_setup();
    }
    println!("== RTP relay: bridged G.711 legs in-process (load generator on separate threads) ==");
    let sizes: Vec<usize> = if !only.is_empty() {
        only
    } else if quick() {
        vec![50]
    } else {
        vec![50, 200, 500]
    };
    let secs = if quick() { 3 } else { 8 };
    for &n in &sizes {
        relay(n, secs, Relay::Voxdesk { transcode: false });
    }
    let n = if quick() { 50 } else { 500 };
    relay(n, secs, Relay::Voxdesk { transcode: true });
    // The same generator against a relay that only makes the legs' system calls: how close
    // voxdesk gets to one socket per leg's ceiling on this machine.
    let biggest = sizes.iter().copied().max().unwrap_or(n);
    relay(biggest, secs, Relay::Floor { connected: false });
    relay(biggest, secs, Relay::Floor { connected: true });
}
