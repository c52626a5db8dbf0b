//! The HTTP API in-process, on a real SQLite file: every route that takes a body, with
//! arbitrary bytes as the body, an arbitrary path segment and query, JSON or not. Any
//! panic is a crash; any 5xx answer is too (hostile input must get a 4xx).
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = voxdesk::config::Config::default();
        cfg.paths.data_dir = dir.path().to_path_buf();
        let store = voxdesk::store::Store::open(&cfg.database_path()).expect("store");
        let app = voxdesk::api::app(Arc::new(cfg), store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture { rt, app, _dir: dir }
    })
}

const ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/kb/{}"),
    ("DELETE", "/api/kb/{}"),
    ("GET", "/api/kb/search?{}"),
    ("POST", "/api/calls/{}/wrapup"),
    ("POST", "/api/calls/{}/supervise"),
    ("POST", "/api/agents/{}/state"),
    ("GET", "/api/calls/{}"),
    ("POST", "/api/users"),
    ("DELETE", "/api/users/{}"),
    ("GET", "/api/callers/{}"),
    ("DELETE", "/api/callers/{}"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (method, route) = ROUTES[data[0] as usize % ROUTES.len()];
    let json = data[1] & 1 == 0;
    let rest = &data[2..];
    // The first line is the path segment (or query), the rest the body.
    let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let seg: String = String::from_utf8_lossy(&rest[..cut])
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '/' && *c != '#' && *c != '?')
        .take(200)
        .collect();
    let body = rest.get(cut + 1..).unwrap_or(&[]).to_vec();
    let uri = route.replace("{}", if seg.is_empty() { "x" } else { &seg });
    let mut req = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("host", "127.0.0.1");
    if json {
        req = req.header("content-type", "application/json");
    }
    let Ok(req) = req.body(Body::from(body)) else {
        return;
    };
    let f = fixture();
    let status = f
        .rt
        .block_on(f.app.clone().oneshot(req))
        .expect("the router is infallible")
        .status();
    assert!(
        !status.is_server_error(),
        "{method} {uri}: {status} from hostile input"
    );
});
