//! RTP port allocation from the configured range (even RTP ports, RTCP on port + 1).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct PortPool {
    inner: Arc<Mutex<PoolInner>>,
}

struct PoolInner {
    free: BTreeSet<u16>,
    next: u16,
}

/// A leased port; returned to the pool on drop.
pub struct PortLease {
    pub port: u16,
    pool: PortPool,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut g) = self.pool.inner.lock() {
            g.free.insert(self.port);
        }
    }
}

impl PortPool {
    pub fn new(min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let free: BTreeSet<u16> = (first..max).step_by(2).collect();
        PortPool {
            inner: Arc::new(Mutex::new(PoolInner { next: first, free })),
        }
    }

    /// Leases the next free even port, rotating through the range so that ports are not
    /// reused at once (late packets of an old call must not reach a new one).
    pub fn lease(&self) -> Option<PortLease> {
        let mut g = self.inner.lock().ok()?;
        let port = g
            .free
            .range(g.next..)
            .next()
            .copied()
            .or_else(|| g.free.iter().next().copied())?;
        g.free.remove(&port);
        g.next = port.wrapping_add(2);
        Some(PortLease {
            port,
            pool: self.clone(),
        })
    }

    /// Leases a port whose RTP and RTCP ports can be bound on `ip` now: ports another
    /// program holds are skipped (tried up to 32 times; the skipped ones go back to the
    /// pool). The session binds them right after, so a race is possible but rare.
    pub fn lease_bindable(&self, ip: std::net::IpAddr) -> Option<PortLease> {
        let mut skipped = Vec::new();
        for _ in 0..32 {
            let lease = self.lease()?;
            let free = |port: u16| std::net::UdpSocket::bind((ip, port)).is_ok();
            if free(lease.port) && free(lease.port + 1) {
                return Some(lease);
            }
            tracing::warn!(
                port = lease.port,
                "RTP port in use by another program: skipped"
            );
            skipped.push(lease);
        }
        None
    }

    pub fn available(&self) -> usize {
        self.inner.lock().map(|g| g.free.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_held_by_others_are_skipped() {
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        // Find two adjacent free even ports, then hold the first pair.
        let base = (40000..60000)
            .step_by(2)
            .find(|&p| (p..p + 4).all(|q| std::net::UdpSocket::bind((ip, q)).is_ok()))
            .unwrap();
        let _held = std::net::UdpSocket::bind((ip, base + 1)).unwrap();
        let p = PortPool::new(base, base + 4);
        let l = p.lease_bindable(ip).unwrap();
        assert_eq!(l.port, base + 2);
        assert_eq!(p.available(), 1, "the skipped port went back to the pool");
    }

    #[test]
    fn leases_rotate_and_return() {
        let p = PortPool::new(10001, 10008);
        let a = p.lease().unwrap();
        assert_eq!(a.port, 10002);
        let b = p.lease().unwrap();
        assert_eq!(b.port, 10004);
        drop(a);
        let c = p.lease().unwrap();
        assert_eq!(c.port, 10006, "rotates before reusing");
        let d = p.lease().unwrap();
        assert_eq!(d.port, 10002, "then wraps to the returned port");
        assert_eq!(p.available(), 0);
        assert!(p.lease().is_none());
    }
}
