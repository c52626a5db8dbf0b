//! SIP transports: UDP, TCP and TLS listeners feeding parsed messages to the endpoint, and
//! the only place SIP touches sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use voxdesk_sip::{frame_stream_limited, parse_datagram, Frame, Message};

mod tls;
pub use tls::tls_config;

/// Where a message came from / goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp(SocketAddr),
    /// A stream connection: plain TCP, or TLS (`sips:`, port 5061).
    Tcp {
        conn: u64,
        addr: SocketAddr,
        tls: bool,
    },
}

impl Flow {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Flow::Udp(a) | Flow::Tcp { addr: a, .. } => *a,
        }
    }
    pub fn reliable(&self) -> bool {
        matches!(self, Flow::Tcp { .. })
    }
    pub fn transport(&self) -> &'static str {
        match self {
            Flow::Udp(_) => "UDP",
            Flow::Tcp { tls: false, .. } => "TCP",
            Flow::Tcp { tls: true, .. } => "TLS",
        }
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flow::Udp(a) => write!(f, "udp:{a}"),
            Flow::Tcp {
                conn,
                addr,
                tls: false,
            } => write!(f, "tcp:{addr}#{conn}"),
            Flow::Tcp {
                conn,
                addr,
                tls: true,
            } => write!(f, "tls:{addr}#{conn}"),
        }
    }
}

/// A message received on a flow.
#[derive(Debug)]
pub struct Inbound {
    pub msg: Message,
    pub flow: Flow,
}

/// Bounds on stream connections and message sizes (from `[limits]`).
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub max_message: usize,
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub idle: std::time::Duration,
}

impl StreamLimits {
    pub fn from_config(l: &crate::config::LimitsConfig) -> StreamLimits {
        StreamLimits {
            max_message: l.max_message_bytes,
            max_connections: l.tcp_max_connections,
            max_per_ip: l.tcp_max_per_ip,
            idle: std::time::Duration::from_secs(l.tcp_idle_secs),
        }
    }
}

#[derive(Clone)]
pub struct Transport {
    udp: Option<Arc<UdpSocket>>,
    tcp: Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>,
    /// Open stream connections per peer IP (both directions), for the caps.
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limits: Arc<StreamLimits>,
    next_conn: Arc<AtomicU64>,
    inbound: mpsc::Sender<Inbound>,
    pub local_udp: Option<SocketAddr>,
    pub local_tcp: Option<SocketAddr>,
    pub local_tls: Option<SocketAddr>,
    pub stats: Arc<TransportStats>,
}

#[derive(Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub sent: AtomicU64,
    /// Stream connections refused at accept (over a cap), closed idle, or closed for an
    /// oversized message.
    pub tcp_refused: AtomicU64,
    pub tcp_idle_closed: AtomicU64,
    pub too_large: AtomicU64,
}

/// A 513 for the request whose head starts `head` (its Via, From, To, Call-ID and CSeq
/// are read from the head alone); None for a response or an unreadable head.
fn too_large_response(head: &[u8]) -> Option<Message> {
    let end = memchr_find(head, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(head.len().min(voxdesk_sip::parse::MAX_HEAD));
    let mut only_head = head[..end].to_vec();
    if !only_head.ends_with(b"\r\n\r\n") {
        only_head.extend_from_slice(b"\r\n\r\n");
    }
    // Without its body the head no longer matches its Content-Length: drop that header.
    let text = String::from_utf8_lossy(&only_head).into_owned();
    let text: String = text
        .split_inclusive('\n')
        .filter(|l| {
            let l = l.trim_start().to_ascii_lowercase();
            !(l.starts_with("content-length") || l.starts_with("l:") || l.starts_with("l "))
        })
        .collect();
    let req = parse_datagram(text.as_bytes()).ok()?;
    if !req.is_request() || req.method() == Some(&voxdesk_sip::Method::Ack) {
        return None;
    }
    let mut r = req.response(513, "Message Too Large", None);
    r.set_header("Server", format!("voxdesk/{}", env!("CARGO_PKG_VERSION")));
    Some(r)
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 3261 §18.2.1 + RFC 3581: record where a request really came from in its top Via.
pub fn stamp_via(msg: &mut Message, src: SocketAddr) {
    if !msg.is_request() {
        return;
    }
    let Some(pos) = msg
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Via"))
    else {
        return;
    };
    let values = voxdesk_sip::header::split_list(&msg.headers[pos].value)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let Some(first) = values.first() else { return };
    let Ok(mut via) = voxdesk_sip::Via::parse(first) else {
        return;
    };
    let ip = src.ip().to_string();
    let host_matches = via.host.to_string().trim_matches(['[', ']']) == ip;
    let has_rport = via.params.iter().any(|(n, _)| n == "rport");
    if !host_matches || has_rport {
        via.set_param("received", Some(&ip));
    }
    if has_rport {
        via.set_param("rport", Some(&src.port().to_string()));
    }
    let mut all = vec![via.to_string()];
    all.extend(values.into_iter().skip(1));
    msg.headers[pos].value = all.join(", ").into();
}

/// Binds the SIP UDP socket with a large receive buffer, so that a burst (a flood of
/// garbage, many REGISTER refreshes at once) does not drop the requests behind it.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if let Err(e) = s.set_recv_buffer_size(4 << 20) {
        tracing::warn!(error = %e, "cannot enlarge the SIP UDP receive buffer");
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

impl Transport {
    /// Binds the configured listeners and starts their receive loops.
    pub async fn bind(
        addr: SocketAddr,
        udp: bool,
        tcp: bool,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
        limits: StreamLimits,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Transport> {
        let udp_sock = if udp {
            Some(Arc::new(bind_udp(addr)?))
        } else {
            None
        };
        let tcp_listener = if tcp {
            Some(TcpListener::bind(addr).await?)
        } else {
            None
        };
        let tls_listener = match tls {
            Some((a, cfg)) => Some((TcpListener::bind(a).await?, cfg)),
            None => None,
        };
        let t = Transport {
            local_udp: udp_sock.as_ref().map(|s| s.local_addr()).transpose()?,
            local_tcp: tcp_listener.as_ref().map(|l| l.local_addr()).transpose()?,
            local_tls: tls_listener
                .as_ref()
                .map(|(l, _)| l.local_addr())
                .transpose()?,
            udp: udp_sock,
            tcp: Arc::new(Mutex::new(HashMap::new())),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            limits: Arc::new(limits),
            next_conn: Arc::new(AtomicU64::new(1)),
            inbound,
            stats: Arc::new(TransportStats::default()),
        };
        if let Some(sock) = t.udp.clone() {
            let t2 = t.clone();
            tokio::spawn(async move { t2.udp_loop(sock).await });
        }
        if let Some(l) = tcp_listener {
            let t2 = t.clone();
            tokio::spawn(async move { t2.accept_loop(l, None).await });
        }
        if let Some((l, cfg)) = tls_listener {
            let t2 = t.clone();
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            tokio::spawn(async move { t2.accept_loop(l, Some(acceptor)).await });
        }
        Ok(t)
    }

    async fn udp_loop(self, sock: Arc<UdpSocket>) {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, src) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP port unreachable etc. surface here on some systems; keep going.
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            let data = &buf[..n];
            if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                continue; // keep-alive
            }
            self.deliver(data, Flow::Udp(src)).await;
        }
    }

    async fn deliver(&self, data: &[u8], flow: Flow) -> bool {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        // A parser bug must not end this receive loop (and with it all SIP on the socket).
        let parsed = std::panic::catch_unwind(|| {
            parse_datagram(data).map(|mut msg| {
                stamp_via(&mut msg, flow.addr());
                msg
            })
        });
        let Ok(parsed) = parsed else {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%flow, len = data.len(), "the SIP parser panicked on a message; dropped");
            return false;
        };
        match parsed {
            Ok(msg) => self.inbound.send(Inbound { msg, flow }).await.is_ok(),
            Err(e) => {
                let n = self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                // A flood of garbage must not flood the log: the first ten, then every 1000th.
                if n < 10 || n.is_multiple_of(1000) {
                    tracing::info!(%flow, reason = %e.reason, total = n + 1, "malformed SIP message");
                } else {
                    tracing::debug!(%flow, reason = %e.reason, "malformed SIP message");
                }
                if let Some(mut resp) = e.bad_request() {
                    // Answer where it came from (symmetric response, RFC 3581 behaviour).
                    resp.set_header("Server", format!("voxdesk/{}", env!("CARGO_PKG_VERSION")));
                    self.send(&flow, &resp);
                }
                false
            }
        }
    }

    /// Counts a stream connection to or from `ip`, if the caps allow another.
    fn admit_stream(&self, ip: IpAddr) -> bool {
        let total = self.tcp.lock().expect("tcp map").len();
        let mut per_ip = self.per_ip.lock().expect("per-ip map");
        let n = per_ip.entry(ip).or_insert(0);
        if total >= self.limits.max_connections || *n >= self.limits.max_per_ip {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release_stream(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().expect("per-ip map");
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    async fn accept_loop(self, l: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
        loop {
            match l.accept().await {
                Ok((s, addr)) => {
                    if !self.admit_stream(addr.ip()) {
                        // Over a cap: closed at once (the peer sees a reset or EOF).
                        let n = self.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                        if n < 10 || n.is_multiple_of(1000) {
                            tracing::warn!(peer = %addr, total = n + 1, "TCP connection refused: limits.tcp_max_connections or tcp_max_per_ip reached");
                        }
                        drop(s);
                        continue;
                    }
                    let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let t = self.clone();
                    match tls.clone() {
                        Some(acceptor) => {
                            tokio::spawn(async move { t.tls_conn(s, conn, addr, acceptor).await })
                        }
                        None => tokio::spawn(async move { t.tcp_conn(s, conn, addr).await }),
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Opens an outbound TCP connection (for requests to a TCP contact with no live flow).
    pub async fn connect_tcp(&self, addr: SocketAddr) -> std::io::Result<Flow> {
        if !self.admit_stream(addr.ip()) {
            return Err(std::io::Error::other("TCP connection limit reached"));
        }
        let s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                self.release_stream(addr.ip());
                return Err(e);
            }
        };
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(256);
        self.tcp.lock().expect("tcp map").insert(conn, tx);
        let t = self.clone();
        tokio::spawn(async move { t.tcp_io(s, conn, addr, rx).await });
        Ok(Flow::Tcp {
            conn,
            addr,
            tls: false,
        })
    }

    async fn tcp_conn(self, s: TcpStream, conn: u64, addr: SocketAddr) {
        let (tx, rx) = mpsc::channel(256);
        self.tcp.lock().expect("tcp map").insert(conn, tx);
        self.tcp_io(s, conn, addr, rx).await;
    }

    /// A TLS connection: the handshake (bounded in time), then the same framing as TCP.
    async fn tls_conn(
        self,
        s: TcpStream,
        conn: u64,
        addr: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        let _ = s.set_nodelay(true);
        let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(s)).await;
        let stream = match hs {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(peer = %addr, error = %e, "TLS handshake failed");
                self.release_stream(addr.ip());
                return;
            }
            Err(_) => {
                tracing::info!(peer = %addr, "TLS handshake timed out");
                self.release_stream(addr.ip());
                return;
            }
        };
        let (tx, rx) = mpsc::channel(256);
        self.tcp.lock().expect("tcp map").insert(conn, tx);
        self.stream_io(
            stream,
            Flow::Tcp {
                conn,
                addr,
                tls: true,
            },
            rx,
        )
        .await;
    }

    async fn tcp_io(self, s: TcpStream, conn: u64, addr: SocketAddr, rx: mpsc::Receiver<Vec<u8>>) {
        let _ = s.set_nodelay(true);
        self.stream_io(
            s,
            Flow::Tcp {
                conn,
                addr,
                tls: false,
            },
            rx,
        )
        .await;
    }

    /// Reads and frames messages from a stream (TCP or TLS) and writes what is queued for it.
    async fn stream_io<S>(self, s: S, flow: Flow, mut rx: mpsc::Receiver<Vec<u8>>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let (conn, addr) = match flow {
            Flow::Tcp { conn, addr, .. } => (conn, addr),
            Flow::Udp(_) => return,
        };
        let (mut rd, mut wr) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match tokio::time::timeout(self.limits.idle, rd.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    self.stats.tcp_idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%flow, "closing an idle TCP connection");
                    break;
                }
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match frame_stream_limited(&buf, self.limits.max_message) {
                    Ok(Frame::TooLarge { skip }) => {
                        // Refuse it (513, RFC 3261 §21.5.14) and close: the rest of the
                        // stream cannot be framed without reading the whole message.
                        self.stats.too_large.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%flow, limit = self.limits.max_message, "message too large; answered 513 and closed");
                        if let Some(resp) = too_large_response(&buf[skip..]) {
                            self.send(&flow, &resp);
                        }
                        break 'read;
                    }
                    Ok(Frame::Incomplete) => break,
                    Ok(Frame::KeepAlive { consumed, pong }) => {
                        buf.drain(..consumed);
                        if pong {
                            self.send_raw(&flow, b"\r\n".to_vec());
                        }
                    }
                    Ok(Frame::Message { skip, len }) => {
                        let msg: Vec<u8> = buf[skip..skip + len].to_vec();
                        buf.drain(..skip + len);
                        self.deliver(&msg, flow.clone()).await;
                    }
                    Err(reason) => {
                        // A stream that cannot be framed is closed (RFC 3261 §18.3).
                        tracing::info!(%flow, %reason, "closing unframeable TCP stream");
                        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = parse_datagram(&buf) {
                            if let Some(resp) = e.bad_request() {
                                self.send(&flow, &resp);
                            }
                        }
                        break 'read;
                    }
                }
            }
        }
        self.tcp.lock().expect("tcp map").remove(&conn);
        self.release_stream(addr.ip());
        // Let queued writes drain, then the writer ends when its sender is dropped.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    }

    fn send_raw(&self, flow: &Flow, bytes: Vec<u8>) {
        match flow {
            Flow::Udp(addr) => {
                let Some(sock) = &self.udp else { return };
                if let Err(e) = sock.try_send_to(&bytes, *addr) {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        let sock = sock.clone();
                        let addr = *addr;
                        tokio::spawn(async move {
                            let _ = sock.send_to(&bytes, addr).await;
                        });
                    } else {
                        tracing::debug!(error = %e, %addr, "udp send failed");
                    }
                }
            }
            Flow::Tcp { conn, .. } => {
                let tx = self.tcp.lock().expect("tcp map").get(conn).cloned();
                match tx {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            tracing::warn!(%flow, "tcp send queue full or closed; message dropped");
                        }
                    }
                    None => tracing::debug!(%flow, "tcp connection gone; message dropped"),
                }
            }
        }
    }

    /// Sends a message on a flow (never blocks the caller).
    pub fn send(&self, flow: &Flow, msg: &Message) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(%flow, msg = %String::from_utf8_lossy(&msg.to_bytes()), "send");
        }
        self.send_raw(flow, msg.to_bytes());
    }

    pub fn tcp_alive(&self, conn: u64) -> bool {
        self.tcp.lock().expect("tcp map").contains_key(&conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_gets_received_and_rport() {
        let mut m = parse_datagram(b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p:5060;branch=z9hG4bK0\r\n\r\n").unwrap();
        stamp_via(&mut m, "203.0.113.9:40000".parse().unwrap());
        let vias = m.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(
            voxdesk_sip::header::param(&vias[0].params, "received"),
            Some(Some("203.0.113.9"))
        );
        assert_eq!(
            voxdesk_sip::header::param(&vias[0].params, "rport"),
            Some(Some("40000"))
        );
        let mut same = parse_datagram(
            b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\r\n",
        )
        .unwrap();
        stamp_via(&mut same, "127.0.0.1:5062".parse().unwrap());
        assert!(same
            .top_via()
            .unwrap()
            .params
            .iter()
            .all(|(n, _)| n != "received"));
    }
}
