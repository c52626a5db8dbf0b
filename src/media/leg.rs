//! How the media clock runs a session: `start` binds a leg's sockets and hands it to the
//! clock, `MediaTx` carries commands to it (and wakes its thread), `Leg` is what the clock
//! ticks.

use super::engine::{Clocked, Engine, Waker};
use super::session::{MediaCmd, MediaEvent, MediaSetup, Session};
use crate::store::MediaSummary;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A running leg: its RTP port, its command queue, and its summary when it ends.
pub struct MediaHandle {
    pub port: u16,
    pub cmd: MediaTx,
    pub done: tokio::sync::oneshot::Receiver<MediaSummary>,
}

/// Commands to a running leg. Queuing one wakes the leg's media thread, so it is acted on
/// at once rather than at the next 20 ms tick; dropping the last clone ends the leg.
#[derive(Clone)]
pub struct MediaTx(Arc<TxInner>);

struct TxInner {
    /// Always `Some` until dropped.
    tx: Option<mpsc::Sender<MediaCmd>>,
    waker: Option<Waker>,
}

impl Drop for TxInner {
    fn drop(&mut self) {
        // The sender goes first, so the woken leg finds its queue closed.
        drop(self.tx.take());
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

impl MediaTx {
    /// A sender with no media thread behind it (tests read the receiver themselves).
    pub fn detached(tx: mpsc::Sender<MediaCmd>) -> MediaTx {
        MediaTx(Arc::new(TxInner {
            tx: Some(tx),
            waker: None,
        }))
    }

    fn tx(&self) -> &mpsc::Sender<MediaCmd> {
        self.0.tx.as_ref().expect("sender present until dropped")
    }

    fn woken<T>(&self, r: T) -> T {
        if let Some(w) = &self.0.waker {
            w.wake();
        }
        r
    }

    pub async fn send(&self, c: MediaCmd) -> Result<(), mpsc::error::SendError<MediaCmd>> {
        let r = self.tx().send(c).await;
        self.woken(r)
    }

    pub fn try_send(&self, c: MediaCmd) -> Result<(), mpsc::error::TrySendError<MediaCmd>> {
        let r = self.tx().try_send(c);
        self.woken(r)
    }

    /// From a thread outside the runtime (the speech pool).
    pub fn blocking_send(&self, c: MediaCmd) -> Result<(), mpsc::error::SendError<MediaCmd>> {
        let r = self.tx().blocking_send(c);
        self.woken(r)
    }
}

/// Binds the RTP/RTCP sockets and hands the leg to the media clock (`engine`).
pub async fn start(
    setup: MediaSetup,
    events: mpsc::Sender<MediaEvent>,
) -> std::io::Result<MediaHandle> {
    let port = setup.lease.port;
    // Plain non-blocking sockets, drained once per 20 ms tick: the leg costs the same
    // whatever the packet rate, and no readiness events are needed.
    let rtp_sock = UdpSocket::bind(SocketAddr::new(setup.bind, port))?;
    let rtcp_sock = UdpSocket::bind(SocketAddr::new(setup.bind, port + 1))?;
    rtp_sock.set_nonblocking(true)?;
    rtcp_sock.set_nonblocking(true)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let leg = Leg {
        session: Session::new(setup, rtp_sock, rtcp_sock, events),
        cmds: cmd_rx,
        done: Some(done_tx),
        ticks: 0,
    };
    let waker = Engine::global().add(Box::new(leg));
    Ok(MediaHandle {
        port,
        cmd: MediaTx(Arc::new(TxInner {
            tx: Some(cmd_tx),
            waker: Some(waker),
        })),
        done: done_rx,
    })
}

/// A session with its command queue, as the media clock runs it.
struct Leg {
    session: Session,
    cmds: mpsc::Receiver<MediaCmd>,
    done: Option<tokio::sync::oneshot::Sender<MediaSummary>>,
    ticks: u64,
}

/// How often (in ticks) a leg drains its RTP socket to the end; in between it takes one
/// datagram a tick (one 20 ms packet arrives per tick), which saves the system call that
/// finds the socket empty. A drain that finds a backlog switches to draining every tick.
const FULL_DRAIN: u64 = 10;

impl Clocked for Leg {
    fn on_wake(&mut self) -> bool {
        self.take_commands()
    }

    fn on_tick(&mut self) -> bool {
        self.ticks += 1;
        // RTCP goes out every 250th tick (5 s), and its socket is read every 10th (RTCP
        // arrives every few seconds; no system call per tick for it).
        self.session
            .drain_sockets(self.ticks.is_multiple_of(FULL_DRAIN));
        self.session.on_tick();
        if self.ticks.is_multiple_of(250) {
            self.session.send_rtcp();
        }
        true
    }

    fn finish(mut self: Box<Self>) {
        let summary = self.session.finish();
        if let Some(done) = self.done.take() {
            let _ = done.send(summary);
        }
    }
}

impl Leg {
    fn take_commands(&mut self) -> bool {
        loop {
            match self.cmds.try_recv() {
                Ok(MediaCmd::Stop) | Err(mpsc::error::TryRecvError::Disconnected) => return false,
                Ok(c) => self.session.on_cmd(c),
                Err(mpsc::error::TryRecvError::Empty) => return true,
            }
        }
    }
}
