//! SIP transports: UDP and TCP listeners feeding parsed messages to the endpoint, and the
//! only place SIP touches sockets. (TLS/WS plug in as further `Flow` kinds.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use voxdesk_sip::{frame_stream, parse_datagram, Frame, Message};

/// Where a message came from / goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp(SocketAddr),
    Tcp { conn: u64, addr: SocketAddr },
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
            Flow::Tcp { .. } => "TCP",
        }
    }
}

impl std::fmt::Display for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flow::Udp(a) => write!(f, "udp:{a}"),
            Flow::Tcp { conn, addr } => write!(f, "tcp:{addr}#{conn}"),
        }
    }
}

/// A message received on a flow.
#[derive(Debug)]
pub struct Inbound {
    pub msg: Message,
    pub flow: Flow,
}

#[derive(Clone)]
pub struct Transport {
    udp: Option<Arc<UdpSocket>>,
    tcp: Arc<Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>>,
    next_conn: Arc<AtomicU64>,
    inbound: mpsc::Sender<Inbound>,
    pub local_udp: Option<SocketAddr>,
    pub local_tcp: Option<SocketAddr>,
    pub stats: Arc<TransportStats>,
}

#[derive(Default)]
pub struct TransportStats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub sent: AtomicU64,
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
        let t = Transport {
            local_udp: udp_sock.as_ref().map(|s| s.local_addr()).transpose()?,
            local_tcp: tcp_listener.as_ref().map(|l| l.local_addr()).transpose()?,
            udp: udp_sock,
            tcp: Arc::new(Mutex::new(HashMap::new())),
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
            tokio::spawn(async move { t2.accept_loop(l).await });
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
        match parse_datagram(data) {
            Ok(mut msg) => {
                stamp_via(&mut msg, flow.addr());
                self.inbound.send(Inbound { msg, flow }).await.is_ok()
            }
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

    async fn accept_loop(self, l: TcpListener) {
        loop {
            match l.accept().await {
                Ok((s, addr)) => {
                    let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let t = self.clone();
                    tokio::spawn(async move { t.tcp_conn(s, conn, addr).await });
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
        let s = TcpStream::connect(addr).await?;
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(256);
        self.tcp.lock().expect("tcp map").insert(conn, tx);
        let t = self.clone();
        tokio::spawn(async move { t.tcp_io(s, conn, addr, rx).await });
        Ok(Flow::Tcp { conn, addr })
    }

    async fn tcp_conn(self, s: TcpStream, conn: u64, addr: SocketAddr) {
        let (tx, rx) = mpsc::channel(256);
        self.tcp.lock().expect("tcp map").insert(conn, tx);
        self.tcp_io(s, conn, addr, rx).await;
    }

    async fn tcp_io(
        self,
        s: TcpStream,
        conn: u64,
        addr: SocketAddr,
        mut rx: mpsc::Receiver<Vec<u8>>,
    ) {
        let _ = s.set_nodelay(true);
        let (mut rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let flow = Flow::Tcp { conn, addr };
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 16 * 1024];
        'read: loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match frame_stream(&buf) {
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
