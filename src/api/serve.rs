//! The HTTP API's accept loop: the axum router served by hyper with the bounds that
//! `axum::serve` has no setting for. Connections are capped in all and per source IP; a
//! client has `api_header_secs` to send each request's head (idle kept-alive connections
//! included); a request has `api_request_secs` to be read and handled (then 408); a body
//! declared larger than the limit is refused from its `Content-Length` before it is read.

use crate::config::LimitsConfig;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest request body any route takes (axum's default extractor limit).
pub(super) const MAX_BODY: u64 = 2 * 1024 * 1024;

/// Open connections per source IP, with a total cap; a `Ticket` frees its place on drop.
#[derive(Clone)]
struct Gate {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
    per_ip: usize,
}

struct Ticket {
    gate: Gate,
    ip: IpAddr,
}

impl Gate {
    fn admit(&self, ip: IpAddr) -> Option<Ticket> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        let n = open.get(&ip).copied().unwrap_or(0);
        if total >= self.max || n >= self.per_ip {
            return None;
        }
        open.insert(ip, n + 1);
        Some(Ticket {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn closing(status: StatusCode, msg: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": msg }))).into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Refuses a body declared too large at once, and gives the rest a deadline.
pub(super) async fn bound_request(limit: Duration, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than 2 MiB",
        );
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                secs = limit.as_secs(),
                "HTTP request not read and handled in time: 408"
            );
            closing(
                StatusCode::REQUEST_TIMEOUT,
                "the request was not received and handled in time",
            )
        }
    }
}

/// Serves `app` on `listener` until `stop` fires.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &LimitsConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let gate = Gate {
        open: Arc::default(),
        max: limits.api_max_connections,
        per_ip: limits.api_max_per_ip,
    };
    let head = Duration::from_secs(limits.api_header_secs);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => return,
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            refused += 1;
            if refused <= 10 || refused.is_multiple_of(1000) {
                tracing::warn!(peer = %peer, total = refused, "HTTP API connection refused: limits.api_max_connections or api_max_per_ip reached");
            }
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(head)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %peer, error = %e, "HTTP API connection ended");
                    }
                }
                _ = async { stop.wait_for(|s| *s).await.is_ok() } => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_in_all_and_per_ip() {
        let g = Gate {
            open: Arc::default(),
            max: 3,
            per_ip: 2,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t1 = g.admit(a).unwrap();
        let _t2 = g.admit(a).unwrap();
        assert!(g.admit(a).is_none(), "per IP");
        let _t3 = g.admit(b).unwrap();
        assert!(g.admit(b).is_none(), "in all");
        drop(t1);
        assert!(g.admit(a).is_some(), "a closed connection frees its place");
    }
}
