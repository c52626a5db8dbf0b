//! The leg's sockets beyond receiving: the RTP socket connected to the latched source
//! while it is live (and dissolved when it goes), and the RTCP sender reports.

use super::Session;
use crate::media::rtcp;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

impl Session {
    /// Connects the RTP socket to the latched source while it sends, and disconnects it
    /// when the latch goes (a new remote from a re-INVITE) or the source has been silent
    /// for 500 ms, so that another source can take over (NAT rebinding, media restart).
    pub(super) fn sync_connection(&mut self, idle: Duration) {
        let want = match (self.rx_source, self.params.remote) {
            (Some(src), Some(remote))
                if src == remote && src.port() != 0 && idle < Duration::from_millis(500) =>
            {
                Some(src)
            }
            _ => None,
        };
        if want == self.connected {
            return;
        }
        if let Some((failed, at)) = self.connect_failed {
            if failed == want && at.elapsed() < Duration::from_secs(1) {
                return;
            }
        }
        let done = match want {
            Some(to) => self.rtp.connect(to),
            None => disconnect(&self.rtp),
        };
        match done {
            Ok(()) => {
                self.connected = want;
                self.connect_failed = None;
            }
            Err(e) => {
                tracing::debug!(error = %e, ?want, "RTP socket (dis)connect failed");
                // Unknown state: send with explicit addresses.
                self.connected = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
                self.connect_failed = Some((want, Instant::now()));
            }
        }
    }

    pub(in crate::media) fn send_rtcp(&mut self) {
        // Nothing goes out before the call is answered or the peer has sent media.
        if !self.params.send && self.rx_source.is_none() {
            return;
        }
        let Some(to) = self
            .rtcp_remote
            .filter(|r| !r.ip().is_unspecified() && self.source.trusted(*r))
        else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let block = (self.stats.received > 0).then(|| {
            self.stats
                .report_block(self.started.elapsed().as_millis() as u64)
        });
        let sr = rtcp::sender_report(
            self.ssrc,
            rtcp::ntp_from_unix_micros(now),
            self.ts,
            self.sent_packets,
            self.sent_octets,
            block,
            &self.cname,
        );
        if let Some(wire) = self.srtp.seal_rtcp(&sr) {
            let _ = self.rtcp.send_to(&wire, to);
        }
    }
}

/// Dissolves a UDP socket's connection (connect to AF_UNSPEC): it hears every source again.
fn disconnect(sock: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, passed with its own size; the fd is
    // owned by `sock` for the length of the call.
    let rc = unsafe {
        let mut addr: libc::sockaddr = std::mem::zeroed();
        addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            sock.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
