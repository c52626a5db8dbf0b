//! One call leg's RTP/RTCP session, ticked every 20 ms by the media clock (`engine`, through
//! `leg`, which also starts it and carries its commands).
//!
//! Receive: symmetric RTP (latch onto the caller's real source), jitter buffer, G.711 decode,
//! RFC 4733 digits. Send: prompts, bridged audio from another leg, or comfort noise; RFC 4733
//! digits. Both directions are recorded. RTCP SR/RR every 5 s. Silence from the remote for
//! the configured timeout is reported once.

use super::dtmf::{self, DtmfReceiver};
use super::jitter::{JitterBuffer, Playout};
use super::link::{FrameRx, FrameTx};
use super::ports::PortLease;
use super::rtcp::{self, RecvStats};
use super::rtp::{self, RtpPacket};
use super::source::SourceGuard;
use super::srtp::LegCrypto;
use super::wav::Recorder;
use crate::speech::hearing::Hearing;
use crate::speech::turn::{EndReason, TurnEvent};
use crate::store::MediaSummary;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use super::frame::{Frame, Pcm, FRAME};
pub use control::{MediaCmd, MediaEvent, MediaSetup, Party, StreamParams, Utterance};

mod control;
mod wire;

/// Audio from another leg, waiting to be mixed into what this leg hears.
struct BridgeInput {
    from: Party,
    rx: FrameRx,
}

struct Queued {
    pcm: Arc<Pcm>,
    pos: usize,
    tag: Option<u64>,
}

pub(super) struct Session {
    _lease: PortLease,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    params: StreamParams,
    events: mpsc::Sender<MediaEvent>,
    jitter: JitterBuffer,
    rx_fifo: VecDeque<i16>,
    /// Caller audio in arrival order, cut into 20 ms frames for the VAD.
    vad_fifo: VecDeque<i16>,
    /// Frames the VAD got this tick (none: the caller sends nothing, e.g. DTX; count silence).
    vad_fed: u32,
    dtmf_rx: DtmfReceiver,
    stats: RecvStats,
    packets_in: u64,
    /// Media only from the negotiated peer (and a bounded burst to an unproven address).
    source: SourceGuard,
    /// Encryption, when the leg negotiated SRTP.
    srtp: LegCrypto,
    rx_source: Option<SocketAddr>,
    /// Where the RTP socket is connected: the latched source while it is live. A connected
    /// socket sends without a route lookup per packet (about 8 % of a relay's system-call
    /// cost here), and the kernel drops other sources, as the latch rule would.
    connected: Option<SocketAddr>,
    /// The (dis)connection that failed last, and when: tried again once a second (or at
    /// once if what is wanted changes), not every tick.
    connect_failed: Option<(Option<SocketAddr>, Instant)>,
    rtcp_remote: Option<SocketAddr>,
    last_rx: Instant,
    timeout: Duration,
    timed_out: bool,
    prompts: VecDeque<Queued>,
    /// Prompts paused by a barge-in, resumed if it was a false one.
    paused: VecDeque<Queued>,
    /// Voice activity, turn-taking and the caller's recent audio (shared with `voxdesk talk`).
    hearing: Hearing,
    bridge_out: Vec<(Party, FrameTx)>,
    bridge_in: Vec<BridgeInput>,
    /// Detect turns while bridged (their audio goes to the recogniser, nothing is paused).
    transcribe: bool,
    digits: VecDeque<(bool, [u8; 4])>,
    digit_ts: u32,
    recorder: Option<Recorder>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    talkspurt: bool,
    sent_packets: u32,
    sent_octets: u32,
    noise_state: u32,
    started: Instant,
    cname: String,
    buf_out: Vec<u8>,
    /// Read the RTP socket to the end every tick (see `drain_sockets`).
    drain_all: bool,
}

impl Session {
    pub(super) fn new(
        s: MediaSetup,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        events: mpsc::Sender<MediaEvent>,
    ) -> Session {
        let frame_ts = s.params.remote_ptime_ms.clamp(10, 60) * 8;
        let depth = (s.jitter_ms / s.params.remote_ptime_ms.clamp(10, 60)).max(1) as usize;
        let recorder = s.record.as_ref().and_then(|p| match Recorder::create(p) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "recording disabled for this call");
                None
            }
        });
        Session {
            _lease: s.lease,
            rtp,
            rtcp,
            rtcp_remote: s
                .params
                .remote
                .map(|a| SocketAddr::new(a.ip(), a.port() + 1)),
            jitter: JitterBuffer::new(frame_ts, depth, depth * 4 + 10),
            source: SourceGuard::new(s.source, s.params.remote),
            srtp: LegCrypto::new(s.params.srtp.as_ref()),
            params: s.params,
            events,
            rx_fifo: VecDeque::with_capacity(FRAME * 4),
            vad_fifo: VecDeque::with_capacity(FRAME * 2),
            vad_fed: 0,
            dtmf_rx: DtmfReceiver::default(),
            stats: RecvStats::default(),
            packets_in: 0,
            rx_source: None,
            connected: None,
            connect_failed: None,
            last_rx: Instant::now(),
            timeout: s.rtp_timeout,
            timed_out: false,
            prompts: VecDeque::new(),
            paused: VecDeque::new(),
            hearing: Hearing::new(s.vad.make(), s.turn),
            bridge_out: Vec::new(),
            bridge_in: Vec::new(),
            transcribe: false,
            digits: VecDeque::new(),
            digit_ts: 0,
            recorder,
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
            talkspurt: true,
            sent_packets: 0,
            sent_octets: 0,
            noise_state: 0x1234_5678,
            started: Instant::now(),
            cname: s.cname,
            buf_out: Vec::with_capacity(200),
            drain_all: false,
        }
    }

    pub(super) fn finish(&mut self) -> MediaSummary {
        if let Some(r) = self.recorder.as_mut() {
            if let Err(e) = r.finish() {
                tracing::error!(error = %e, "recording not finalized");
            }
        }
        MediaSummary {
            packets_in: self.packets_in,
            packets_out: self.sent_packets as u64,
            lost: self.stats.prior_lost + self.stats.cumulative_lost().max(0),
            jitter_ms: self.stats.jitter() as f64 / 8.0,
        }
    }

    pub(super) fn on_cmd(&mut self, c: MediaCmd) {
        match c {
            MediaCmd::Play(pcm) => self.prompts.push_back(Queued {
                pcm,
                pos: 0,
                tag: None,
            }),
            MediaCmd::Say { pcm, tag } => {
                let q = Queued {
                    pcm,
                    pos: 0,
                    tag: Some(tag),
                };
                if self.paused.is_empty() {
                    self.prompts.push_back(q)
                } else {
                    self.paused.push_back(q)
                }
            }
            MediaCmd::StopPlayback => {
                self.prompts.clear();
                self.paused.clear();
            }
            MediaCmd::SendDigit(d) => self.digits.extend(dtmf::digit_packets(d, 100)),
            MediaCmd::Update(p) => {
                if p.remote != self.params.remote {
                    self.source.set_sdp(p.remote);
                    self.rx_source = None;
                    self.rtcp_remote = p.remote.map(|a| SocketAddr::new(a.ip(), a.port() + 1));
                }
                if p.recv && !self.params.recv {
                    self.last_rx = Instant::now();
                    self.timed_out = false;
                }
                if p.srtp != self.params.srtp {
                    self.srtp = LegCrypto::new(p.srtp.as_ref());
                }
                self.params = p;
            }
            MediaCmd::BridgeOut(to, tx) => {
                self.bridge_out.retain(|(p, _)| *p != to);
                if let Some(tx) = tx {
                    self.bridge_out.push((to, tx));
                }
            }
            MediaCmd::BridgeIn(from, rx) => {
                self.bridge_in.retain(|i| i.from != from);
                if let Some(rx) = rx {
                    self.bridge_in.push(BridgeInput { from, rx });
                }
            }
            MediaCmd::Transcribe(on) => self.transcribe = on,
            MediaCmd::Record(path) => match Recorder::create(&path) {
                Ok(r) => self.recorder = Some(r),
                Err(e) => tracing::error!(error = %e, "recording disabled for this call"),
            },
            MediaCmd::EndTurn { end } => {
                let now = self.hearing.now();
                if let Some(ev) = self.hearing.on_stable_transcript(end) {
                    self.on_turn_event(ev, now);
                }
            }
            MediaCmd::Stop => {}
        }
    }

    /// Takes the datagrams that arrived since the last tick: one (the 20 ms packet) unless
    /// `full`, or the remote sends shorter packets, or a full drain found a backlog.
    /// `full` also reads the RTCP socket.
    pub(super) fn drain_sockets(&mut self, full: bool) {
        let mut buf = [0u8; 2048];
        // Bounded, so a flood cannot starve the tick (50 ms of 10 ms packets is 5).
        let most = if full || self.drain_all || self.params.remote_ptime_ms < 20 {
            64
        } else {
            1
        };
        let mut got = 0;
        for _ in 0..most {
            match self.rtp.recv_from(&mut buf) {
                Ok((n, from)) => {
                    got += 1;
                    self.on_rtp(&buf[..n], from);
                }
                Err(_) => break,
            }
        }
        if !full {
            return;
        }
        // A backlog behind this tick's packet (more than one extra datagram): the remote
        // sends faster than one packet per tick (clock drift, a burst); drain every tick
        // until a full drain finds it settled.
        self.drain_all = got > 2;
        for _ in 0..8 {
            match self.rtcp.recv_from(&mut buf) {
                Ok((n, from)) => self.on_rtcp(&buf[..n], from),
                Err(_) => break,
            }
        }
    }

    fn on_rtp(&mut self, b: &[u8], from: SocketAddr) {
        if !self.source.accept(from) {
            // Not the negotiated peer (an RTP spray, a hijack attempt): never heard,
            // recorded or latched. Logged once per leg, then counted.
            if self.source.refused == 1 {
                tracing::warn!(%from, "RTP from a source that is not this call's peer ignored (media.rtp_source = \"strict\")");
            }
            return;
        }
        let Some(clear) = self.srtp.open_rtp(b) else {
            return;
        };
        let b = &clear[..];
        let Ok(p) = RtpPacket::parse(b) else {
            tracing::debug!(%from, len = b.len(), "ignored a non-RTP datagram");
            return;
        };
        // Symmetric RTP: latch onto the source of the first valid packet (a NATed caller's
        // real address rarely matches its SDP). Another source is ignored while the latched
        // one is live, and taken over after 500 ms of silence (NAT rebinding, media restart).
        if let Some(src) = self.rx_source {
            if src != from && self.last_rx.elapsed() < Duration::from_millis(500) {
                tracing::debug!(%from, "ignored RTP from a second source");
                return;
            }
        }
        self.rx_source = Some(from);
        // Port 0 cannot be answered (sipp's pcap replay sends from it): keep the send target.
        if from.port() != 0 && self.params.remote != Some(from) {
            self.params.remote = Some(from);
            self.rtcp_remote = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
            let _ = self.events.try_send(MediaEvent::Latched(from));
        }
        self.last_rx = Instant::now();
        self.packets_in += 1;
        if Some(p.payload_type) == self.params.dtmf_pt {
            if let Some(d) = self.dtmf_rx.on_packet(p.timestamp, p.payload) {
                if self.events.try_send(MediaEvent::Dtmf(d)).is_err() {
                    tracing::warn!(digit = %d, "call not reading media events; digit dropped");
                }
            }
        } else if p.payload_type == self.params.payload_type {
            // Loss and jitter are measured on the audio stream only.
            let arrival = (self.started.elapsed().as_micros() / 125) as u32;
            self.stats.on_packet(p.ssrc, p.seq, p.timestamp, arrival);
            self.jitter.push(p.timestamp, p.payload);
            if !self.listening() {
                return; // bridged and not transcribed: nothing listens to the caller here
            }
            // Turn-taking listens at arrival, ahead of the jitter buffer's delay, so that a
            // barge-in stops our prompt as early as possible.
            let law = self.params.law;
            self.vad_fifo
                .extend(p.payload.iter().map(|&b| law.decode_one(b)));
            while self.vad_fifo.len() >= FRAME {
                let mut f = [0i16; FRAME];
                for (o, x) in f.iter_mut().zip(self.vad_fifo.drain(..FRAME)) {
                    *o = x;
                }
                self.take_turns(&f);
                self.vad_fed += 1;
            }
        }
    }

    fn on_rtcp(&mut self, b: &[u8], from: SocketAddr) {
        if !self.source.belongs(from) {
            return;
        }
        let Some(clear) = self.srtp.open_rtcp(b) else {
            return;
        };
        match rtcp::parse(&clear) {
            Some(info) => {
                if let Some((ssrc, mid)) = info.sender_report {
                    if ssrc == self.stats.ssrc {
                        self.stats.last_sr = Some((mid, self.started.elapsed().as_millis() as u64));
                    }
                }
                for (fraction, lost, jitter) in &info.blocks {
                    tracing::debug!(%from, fraction_lost = *fraction as f32 / 256.0, lost, jitter, "RTCP report");
                }
            }
            None => tracing::trace!(%from, "ignored malformed RTCP"),
        }
    }

    fn next_rx_frame(&mut self) -> Frame {
        let mut out = [0i16; FRAME];
        while self.rx_fifo.len() < FRAME {
            match self.jitter.pop() {
                Playout::Frame(f) => {
                    let law = self.params.law;
                    // The usual case (20 ms packets, nothing left over): decode straight
                    // into the frame.
                    if self.rx_fifo.is_empty() && f.len() == FRAME {
                        for (o, &b) in out.iter_mut().zip(f.iter()) {
                            *o = law.decode_one(b);
                        }
                        return out;
                    }
                    self.rx_fifo.extend(f.iter().map(|&b| law.decode_one(b)));
                }
                Playout::Missing => {
                    let n = (self.params.remote_ptime_ms.clamp(10, 60) * 8) as usize;
                    self.rx_fifo.extend(std::iter::repeat_n(0, n));
                }
                Playout::Idle => break,
            }
        }
        if self.rx_fifo.len() >= FRAME {
            for (o, s) in out.iter_mut().zip(self.rx_fifo.drain(..FRAME)) {
                *o = s;
            }
        }
        out
    }

    /// Whether turn-taking listens to this leg: always for the bot's caller, and for
    /// transcription; not on a plain relayed leg.
    fn listening(&self) -> bool {
        self.params.recv && (self.bridge_in.is_empty() || self.transcribe)
    }

    /// VAD + turn-taking on one 20 ms frame of the caller's audio as it arrives. Barge-in
    /// stops our prompt here, before the next frame goes out (no round trip through the
    /// call); a false barge-in resumes it.
    fn take_turns(&mut self, rx: &Frame) {
        // Callers only call this while `listening()`. Turns for the transcript only (an
        // agent's leg, a bridged caller): what plays is never paused for them.
        let bridged = !self.bridge_in.is_empty();
        let speaking = !self.transcribe && !bridged && !self.prompts.is_empty();
        let Some(ev) = self.hearing.on_frame(rx, speaking) else {
            return;
        };
        let frame_end = self.hearing.now();
        self.on_turn_event(ev, frame_end);
    }

    /// Acts on a turn-taking event; `now` is the end of the current frame.
    fn on_turn_event(&mut self, ev: TurnEvent, frame_end: Duration) {
        match ev {
            TurnEvent::BargeIn { .. } => self.paused = std::mem::take(&mut self.prompts),
            TurnEvent::FalseBargeIn { .. } => self.prompts = std::mem::take(&mut self.paused),
            TurnEvent::SpeechStarted { .. } => self.paused.clear(),
            TurnEvent::Pause { start, end } => {
                let u = Utterance {
                    start,
                    end,
                    reason: EndReason::StableTranscript,
                    pcm: self.hearing.span(start, end),
                    speech_end: Instant::now() - frame_end.saturating_sub(end),
                    decided: Instant::now(),
                };
                let _ = self.events.try_send(MediaEvent::Tentative(u));
                return;
            }
            TurnEvent::TurnEnded { start, end, reason } => {
                let u = Utterance {
                    start,
                    end,
                    reason,
                    pcm: self.hearing.span(start, end),
                    speech_end: Instant::now() - frame_end.saturating_sub(end),
                    decided: Instant::now(),
                };
                if self.events.try_send(MediaEvent::Utterance(u)).is_err() {
                    tracing::warn!("call not reading media events; caller turn dropped");
                }
                return;
            }
            _ => {}
        }
        let _ = self.events.try_send(MediaEvent::Turn(ev));
    }

    fn comfort_noise(&mut self) -> Frame {
        // Low-level white noise (~ -70 dBFS) so the line never sounds dead.
        let mut out = [0i16; FRAME];
        for o in out.iter_mut() {
            self.noise_state ^= self.noise_state << 13;
            self.noise_state ^= self.noise_state >> 17;
            self.noise_state ^= self.noise_state << 5;
            *o = ((self.noise_state >> 16) as i16) >> 11;
        }
        out
    }

    fn next_tx_frame(&mut self) -> (Frame, bool) {
        let mut f = [0i16; FRAME];
        let mut mixed = false;
        // Each link bounds its backlog to ~100 ms.
        for input in &self.bridge_in {
            mixed |= input.rx.mix_into(&mut f);
        }
        if mixed {
            return (f, true);
        }
        if let Some(q) = self.prompts.front_mut() {
            if q.pos == 0 {
                if let Some(tag) = q.tag {
                    let _ = self.events.try_send(MediaEvent::ReplyStarted {
                        tag,
                        at: Instant::now(),
                    });
                }
            }
            let end = (q.pos + FRAME).min(q.pcm.len());
            f[..end - q.pos].copy_from_slice(&q.pcm[q.pos..end]);
            q.pos = end;
            if end >= q.pcm.len() {
                self.prompts.pop_front();
                if self.prompts.is_empty() {
                    let _ = self.events.try_send(MediaEvent::PlaybackDone);
                }
            }
            return (f, true);
        }
        (self.comfort_noise(), false)
    }

    pub(super) fn on_tick(&mut self) {
        let idle = self.last_rx.elapsed();
        self.sync_connection(idle);
        let rx = if self.params.recv {
            self.next_rx_frame()
        } else {
            [0; FRAME]
        };
        if self.vad_fed == 0 {
            if self.listening() {
                self.take_turns(&[0; FRAME]);
            } else {
                // Nobody listens: the turn timeline moves on with nothing kept.
                self.hearing.skip_frame();
            }
        }
        self.vad_fed = 0;
        for (_, tx) in &self.bridge_out {
            tx.send(&rx);
        }
        // While a digit is being sent, the audio source waits (a prompt is not skipped).
        let sending_digit =
            self.params.send && self.params.dtmf_pt.is_some() && !self.digits.is_empty();
        let (tx_pcm, voiced) = if sending_digit {
            ([0; FRAME], false)
        } else {
            self.next_tx_frame()
        };
        if let Some(rec) = self.recorder.as_mut() {
            if let Err(e) = rec.write(&rx, &tx_pcm) {
                tracing::error!(error = %e, "recording stopped");
                self.recorder = None;
            }
        }
        if self.params.send {
            let remote = self.params.remote.filter(|r| !r.ip().is_unspecified());
            if let Some(remote) = remote.filter(|r| self.source.may_send(*r)) {
                if let (Some((marker, ev)), Some(pt)) =
                    (self.digits.front().copied(), self.params.dtmf_pt)
                {
                    self.digits.pop_front();
                    if marker {
                        self.digit_ts = self.ts;
                    }
                    rtp::build(
                        &mut self.buf_out,
                        marker,
                        pt,
                        self.seq,
                        self.digit_ts,
                        self.ssrc,
                        &ev,
                    );
                } else {
                    self.digits.clear();
                    let mut enc = [0u8; FRAME];
                    for (e, &x) in enc.iter_mut().zip(tx_pcm.iter()) {
                        *e = self.params.law.encode_one(x);
                    }
                    let marker = voiced && self.talkspurt;
                    self.talkspurt = !voiced;
                    rtp::build(
                        &mut self.buf_out,
                        marker,
                        self.params.payload_type,
                        self.seq,
                        self.ts,
                        self.ssrc,
                        &enc,
                    );
                }
                let sent = match self.srtp.seal_rtp(&self.buf_out) {
                    None => Err(std::io::Error::other("SRTP")),
                    Some(wire) if self.connected == Some(remote) => self.rtp.send(&wire),
                    Some(wire) => self.rtp.send_to(&wire, remote),
                };
                if sent.is_ok() {
                    self.sent_packets = self.sent_packets.wrapping_add(1);
                    self.sent_octets = self
                        .sent_octets
                        .wrapping_add(self.buf_out.len() as u32 - 12);
                }
                self.seq = self.seq.wrapping_add(1);
            }
        }
        self.ts = self.ts.wrapping_add(FRAME as u32);
        if self.params.recv && !self.timed_out && idle > self.timeout {
            self.timed_out = true;
            let _ = self.events.try_send(MediaEvent::RtpTimeout);
        }
    }
}
