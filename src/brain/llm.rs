//! Optional generated answers: a question the knowledge base cannot answer goes to an
//! OpenAI-compatible chat endpoint the operator runs on the premises (llama.cpp server,
//! vLLM, Ollama), grounded on the closest knowledge-base entries, with a hard timeout.
//! Off by default; any failure falls back to the normal "could you rephrase" path.
//! Plain HTTP/1.1 over a TCP socket (local endpoints; put a proxy in front for TLS).

use crate::config::LlmConfig;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("llm.url {0:?}: only http://host[:port]/path is supported")]
    Url(String),
    #[error("chat endpoint: {0}")]
    Io(#[from] std::io::Error),
    #[error("chat endpoint: {0}")]
    Protocol(String),
    #[error("chat endpoint took longer than {0} ms")]
    Timeout(u64),
}

fn split_url(url: &str) -> Result<(String, String), LlmError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| LlmError::Url(url.into()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(LlmError::Url(url.into()));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// POSTs `body` as JSON and returns the response body, all within `timeout`.
fn post_json(
    url: &str,
    body: &Value,
    api_key: &str,
    timeout: Duration,
) -> Result<String, LlmError> {
    let start = Instant::now();
    let (host, path) = split_url(url)?;
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| LlmError::Protocol(format!("cannot resolve {host}")))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    let left = |start: Instant| {
        timeout
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .ok_or(LlmError::Timeout(timeout.as_millis() as u64))
    };
    s.set_write_timeout(Some(left(start)?))?;
    let payload = body.to_string();
    let auth = if api_key.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {api_key}\r\n")
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: application/json\r\n{auth}Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(left(start)?))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LlmError::Timeout(timeout.as_millis() as u64))
            }
            Err(e) => return Err(e.into()),
        }
        if raw.len() > 1 << 20 {
            return Err(LlmError::Protocol("response over 1 MiB".into()));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| LlmError::Protocol("no HTTP header".into()))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(LlmError::Protocol(format!("HTTP {status}")));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| LlmError::Protocol("bad chunk".into()))?;
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            r = tail[n..].trim_start_matches("\r\n");
        }
        return Ok(out);
    }
    Ok(rest.to_string())
}

/// A knowledge-base entry given to the model as grounding.
pub struct Grounding<'a> {
    pub question: &'a str,
    pub answer: &'a str,
}

/// Asks the endpoint to answer `question` from `facts`; the answer is cleaned for speech
/// (no markdown, at most ~400 characters). None when it has nothing to say.
pub fn ask(
    cfg: &LlmConfig,
    question: &str,
    lang: &str,
    facts: &[Grounding],
) -> Result<Option<String>, LlmError> {
    let system = if lang == "zh" && !cfg.system_zh.is_empty() {
        &cfg.system_zh
    } else {
        &cfg.system_en
    };
    let mut context = String::new();
    for f in facts {
        context.push_str(&format!("Q: {}\nA: {}\n", f.question, f.answer));
    }
    let body = json!({
        "model": cfg.model,
        "max_tokens": cfg.max_tokens,
        "temperature": 0.2,
        "stream": false,
        "messages": [
            {"role": "system", "content": format!("{system}\n\nFacts:\n{context}")},
            {"role": "user", "content": question},
        ],
    });
    let text = post_json(
        &cfg.url,
        &body,
        &cfg.api_key,
        Duration::from_millis(cfg.timeout_ms),
    )?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| LlmError::Protocol(format!("not JSON: {e}")))?;
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| LlmError::Protocol("no choices[0].message.content".into()))?;
    let clean: String = content
        .replace(['*', '#', '`', '_'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if clean.is_empty() {
        return Ok(None);
    }
    // At most ~400 characters, cut at a sentence end when there is one.
    let mut out: String = clean.chars().take(400).collect();
    if out.len() < clean.len() {
        if let Some(i) = out.rfind(['.', '!', '?', '。', '！', '？']) {
            out.truncate(i + out[i..].chars().next().map(char::len_utf8).unwrap_or(1));
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A stub chat endpoint on loopback: answers one request with `reply` after `delay`,
    /// and hands back the request it got.
    fn stub(reply: &'static str, delay: Duration) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/chat/completions", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            while let Ok(n) = s.read(&mut buf) {
                req.extend_from_slice(&buf[..n]);
                let t = String::from_utf8_lossy(&req);
                if let Some((head, body)) = t.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            std::thread::sleep(delay);
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}", reply.len());
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, h)
    }

    fn cfg(url: &str, timeout_ms: u64) -> LlmConfig {
        LlmConfig {
            enabled: true,
            url: url.into(),
            timeout_ms,
            ..Default::default()
        }
    }

    #[test]
    fn grounded_answer_from_a_local_endpoint() {
        let (url, h) = stub(
            r#"{"choices":[{"message":{"role":"assistant","content":"**Yes**, the Travel Pass covers Japan for ten dollars a day."}}]}"#,
            Duration::ZERO,
        );
        let facts = [Grounding {
            question: "How much does roaming cost?",
            answer: "A Travel Pass costs ten dollars a day.",
        }];
        let a = ask(
            &cfg(&url, 3000),
            "Does the travel pass work in Japan?",
            "en",
            &facts,
        )
        .unwrap();
        assert_eq!(
            a.as_deref(),
            Some("Yes, the Travel Pass covers Japan for ten dollars a day.")
        );
        let req = h.join().unwrap();
        assert!(
            req.starts_with("POST /v1/chat/completions HTTP/1.1"),
            "{req}"
        );
        assert!(
            req.contains("A Travel Pass costs ten dollars a day."),
            "grounded: {req}"
        );
        assert!(req.contains("Does the travel pass work in Japan?"), "{req}");
    }

    #[test]
    fn slow_broken_or_absent_endpoints_fail_cleanly() {
        let (url, h) = stub(
            r#"{"choices":[{"message":{"content":"late"}}]}"#,
            Duration::from_millis(800),
        );
        let t = Instant::now();
        let e = ask(&cfg(&url, 200), "hello?", "en", &[]).unwrap_err();
        assert!(matches!(e, LlmError::Timeout(200)), "{e}");
        assert!(t.elapsed() < Duration::from_millis(700));
        let _ = h.join();
        let (url, h) = stub("<html>oops</html>", Duration::ZERO);
        assert!(matches!(
            ask(&cfg(&url, 2000), "hello?", "en", &[]),
            Err(LlmError::Protocol(_))
        ));
        let _ = h.join();
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(ask(
            &cfg(&format!("http://127.0.0.1:{port}/v1"), 500),
            "hello?",
            "en",
            &[]
        )
        .is_err());
        assert!(matches!(
            ask(&cfg("https://x/v1", 500), "q", "en", &[]),
            Err(LlmError::Url(_))
        ));
    }
}
