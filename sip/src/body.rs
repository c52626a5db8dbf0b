//! Message bodies: finding the SDP in a plain or multipart (RFC 2046) body.

use crate::header::{param, MediaType};
use crate::msg::Message;

/// The SDP carried by a message: the body itself, or the first application/sdp part of a
/// multipart body. `Ok(None)` when there is no body; `Err` for a body we cannot use.
pub fn sdp_body(msg: &Message) -> Result<Option<Vec<u8>>, String> {
    if msg.body.is_empty() {
        return Ok(None);
    }
    let ct = match msg.content_type() {
        Some(Ok(ct)) => ct,
        Some(Err(e)) => return Err(format!("Content-Type: {e}")),
        None => return Err("body without Content-Type".into()),
    };
    if ct.is("application", "sdp") {
        return Ok(Some(msg.body.clone()));
    }
    if ct.kind == "multipart" {
        let Some(Some(boundary)) = param(&ct.params, "boundary") else {
            return Err("multipart body without boundary".into());
        };
        for part in multipart_parts(&msg.body, boundary) {
            if part
                .content_type
                .as_ref()
                .map(|c| c.is("application", "sdp"))
                .unwrap_or(false)
            {
                return Ok(Some(part.body));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

pub struct Part {
    pub content_type: Option<MediaType>,
    pub body: Vec<u8>,
}

/// Splits a multipart body on `--boundary` delimiter lines.
pub fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Part> {
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut sections = text.split(delim.as_str());
    sections.next(); // preamble
    for sec in sections {
        if sec.starts_with("--") {
            break; // close delimiter
        }
        let sec = sec
            .strip_prefix("\r\n")
            .or_else(|| sec.strip_prefix('\n'))
            .unwrap_or(sec);
        let (head, body) = match sec
            .find("\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| sec.find("\n\n").map(|i| (i, 2)))
        {
            Some((i, n)) => (&sec[..i], &sec[i + n..]),
            None => ("", sec),
        };
        let body = body
            .strip_suffix("\r\n")
            .or_else(|| body.strip_suffix('\n'))
            .unwrap_or(body);
        let content_type = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("Content-Type")
                .then(|| MediaType::parse(v.trim()).ok())
                .flatten()
        });
        parts.push(Part {
            content_type,
            body: body.as_bytes().to_vec(),
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sdp_in_multipart() {
        let body = "preamble\r\n--xyz\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=a 1 1 IN IP4 1.2.3.4\r\n\r\n--xyz--\r\n";
        let raw = format!("INVITE sip:x@y SIP/2.0\r\nContent-Type: multipart/mixed;boundary=xyz\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let m = crate::parse_datagram(raw.as_bytes()).unwrap();
        let sdp = sdp_body(&m).unwrap().unwrap();
        assert!(String::from_utf8(sdp).unwrap().starts_with("v=0\r\no=a"));
    }
}
