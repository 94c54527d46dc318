//! The access log: one JSON object per request, written into the core's buffer without building
//! an intermediate value. Never contains request or response bodies, query secrets stay as the
//! client sent them in the target, and no header values are logged.

use std::time::SystemTime;

use weir_filter::RequestCtx;

/// Appends the JSON line of `ctx` (with its newline) to `buf`.
pub fn write_line(buf: &mut Vec<u8>, ctx: &RequestCtx) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let total = ctx
        .timings
        .end
        .map(|e| e.duration_since(ctx.timings.start).as_secs_f64() * 1e3)
        .unwrap_or(0.0);
    let upstream = match (ctx.timings.upstream_sent, ctx.timings.upstream_first_byte) {
        (Some(s), Some(f)) => Some(f.duration_since(s).as_secs_f64() * 1e3),
        _ => None,
    };
    buf.extend_from_slice(b"{\"time\":");
    push_f64(buf, now, 3);
    buf.extend_from_slice(b",\"request_id\":");
    push_str(buf, ctx.request_id.as_bytes());
    buf.extend_from_slice(b",\"client\":\"");
    buf.extend_from_slice(ctx.client_addr.to_string().as_bytes());
    buf.extend_from_slice(b"\",\"listener\":");
    push_str(buf, ctx.listener.as_bytes());
    buf.extend_from_slice(b",\"method\":");
    push_str(buf, &ctx.method);
    buf.extend_from_slice(b",\"target\":");
    push_str(buf, &ctx.target);
    buf.extend_from_slice(if ctx.http2 {
        b",\"protocol\":\"HTTP/2\""
    } else {
        b",\"protocol\":\"HTTP/1.1\""
    });
    buf.extend_from_slice(b",\"route\":");
    push_opt(buf, ctx.route.as_deref());
    buf.extend_from_slice(b",\"cluster\":");
    push_opt(buf, ctx.cluster.as_deref());
    buf.extend_from_slice(b",\"endpoint\":");
    match ctx.endpoint {
        Some(e) => push_str(buf, e.to_string().as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"status\":");
    buf.extend_from_slice(itoa::Buffer::new().format(ctx.status).as_bytes());
    buf.extend_from_slice(b",\"request_bytes\":");
    buf.extend_from_slice(itoa::Buffer::new().format(ctx.request_bytes).as_bytes());
    buf.extend_from_slice(b",\"response_bytes\":");
    buf.extend_from_slice(itoa::Buffer::new().format(ctx.response_bytes).as_bytes());
    buf.extend_from_slice(b",\"duration_ms\":");
    push_f64(buf, total, 3);
    buf.extend_from_slice(b",\"upstream_ms\":");
    match upstream {
        Some(u) => push_f64(buf, u, 3),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"retries\":");
    buf.extend_from_slice(itoa::Buffer::new().format(ctx.retries).as_bytes());
    buf.extend_from_slice(b",\"error\":");
    match &ctx.error {
        Some(e) => push_str(buf, e.kind.as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"consumer\":");
    push_opt(buf, ctx.consumer.as_deref());
    buf.extend_from_slice(b",\"quota_rejected\":");
    push_opt(buf, ctx.quota_rejected);
    if let Some(tls) = &ctx.tls {
        buf.extend_from_slice(b",\"tls\":{\"version\":");
        push_str(buf, tls.version.as_bytes());
        buf.extend_from_slice(b",\"sni\":");
        push_opt(buf, tls.sni.as_deref());
        buf.extend_from_slice(if tls.resumed {
            b",\"resumed\":true,\"client_subject\":"
        } else {
            b",\"resumed\":false,\"client_subject\":"
        });
        push_opt(buf, tls.client_cert.as_ref().map(|c| &*c.subject));
        buf.extend_from_slice(b"}");
    }
    if let Some(ai) = &ctx.ai {
        write_ai(buf, ctx, ai);
    }
    buf.extend_from_slice(b"}\n");
}

/// What the log line of a `tcp` listener's connection says.
pub struct TcpLine<'a> {
    /// The ClientHello's server name (pass-through).
    pub sni: Option<&'a str>,
    /// The cluster chosen.
    pub cluster: Option<&'a str>,
    /// The endpoint connected to.
    pub endpoint: Option<std::net::SocketAddr>,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// Ended by the idle timeout.
    pub idle_timeout: bool,
    /// How long the connection lasted.
    pub duration: std::time::Duration,
    /// Why it failed.
    pub error: Option<&'a str>,
}

/// Appends the JSON line of a `tcp` listener's connection (with its newline) to `buf`.
pub fn write_tcp_line(
    buf: &mut Vec<u8>,
    listener: &str,
    client: std::net::SocketAddr,
    l: &TcpLine<'_>,
) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    buf.extend_from_slice(b"{\"time\":");
    push_f64(buf, now, 3);
    buf.extend_from_slice(b",\"kind\":\"tcp\",\"client\":");
    push_str(buf, client.to_string().as_bytes());
    buf.extend_from_slice(b",\"listener\":");
    push_str(buf, listener.as_bytes());
    buf.extend_from_slice(b",\"sni\":");
    push_opt(buf, l.sni);
    buf.extend_from_slice(b",\"cluster\":");
    push_opt(buf, l.cluster);
    buf.extend_from_slice(b",\"endpoint\":");
    match l.endpoint {
        Some(e) => push_str(buf, e.to_string().as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"bytes_up\":");
    buf.extend_from_slice(itoa::Buffer::new().format(l.bytes_up).as_bytes());
    buf.extend_from_slice(b",\"bytes_down\":");
    buf.extend_from_slice(itoa::Buffer::new().format(l.bytes_down).as_bytes());
    buf.extend_from_slice(if l.idle_timeout {
        b",\"idle_timeout\":true,\"duration_ms\":"
    } else {
        b",\"idle_timeout\":false,\"duration_ms\":"
    });
    push_f64(buf, l.duration.as_secs_f64() * 1e3, 3);
    buf.extend_from_slice(b",\"error\":");
    push_opt(buf, l.error);
    buf.extend_from_slice(b"}\n");
}

/// The AI fields of a line: what was asked, who answered, the tokens (never a key or a prompt).
fn write_ai(buf: &mut Vec<u8>, ctx: &RequestCtx, ai: &weir_filter::AiInfo) {
    buf.extend_from_slice(b",\"ai\":{\"api\":");
    push_str(buf, ai.api.as_bytes());
    buf.extend_from_slice(b",\"requested_model\":");
    push_opt(buf, ai.requested_model.as_deref());
    buf.extend_from_slice(b",\"provider\":");
    push_opt(buf, ai.provider.as_deref());
    buf.extend_from_slice(b",\"model\":");
    push_opt(buf, ai.model.as_deref());
    buf.extend_from_slice(if ai.stream {
        b",\"stream\":true"
    } else {
        b",\"stream\":false"
    });
    buf.extend_from_slice(b",\"tried\":[");
    for (i, t) in ai.tried.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        push_str(buf, t.as_bytes());
    }
    buf.push(b']');
    match &ai.usage {
        Some(u) => {
            let n = |buf: &mut Vec<u8>, name: &[u8], v: u64| {
                buf.extend_from_slice(name);
                buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            };
            n(buf, b",\"input_tokens\":", u.input);
            n(buf, b",\"output_tokens\":", u.output);
            n(buf, b",\"cached_tokens\":", u.cached_input);
            n(buf, b",\"reasoning_tokens\":", u.reasoning);
            buf.extend_from_slice(if u.estimated {
                b",\"estimated\":true"
            } else {
                b",\"estimated\":false"
            });
        }
        None => buf.extend_from_slice(b",\"input_tokens\":null,\"output_tokens\":null"),
    }
    buf.extend_from_slice(b",\"cost\":");
    match ai.cost_nano {
        Some(n) => push_f64(buf, n as f64 / 1e9, 9),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"ttft_ms\":");
    match ai.first_token {
        Some(t) => push_f64(
            buf,
            t.duration_since(ctx.timings.start).as_secs_f64() * 1e3,
            3,
        ),
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
}

fn push_opt(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(buf, s.as_bytes()),
        None => buf.extend_from_slice(b"null"),
    }
}

fn push_f64(buf: &mut Vec<u8>, v: f64, decimals: usize) {
    use std::io::Write;
    let _ = write!(buf, "{v:.decimals$}");
}

/// A JSON string; bytes that are not UTF-8 become U+FFFD.
fn push_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '"' => buf.extend_from_slice(b"\\\""),
            '\\' => buf.extend_from_slice(b"\\\\"),
            '\n' => buf.extend_from_slice(b"\\n"),
            '\r' => buf.extend_from_slice(b"\\r"),
            '\t' => buf.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                use std::io::Write;
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => {
                let mut tmp = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
            }
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_json() {
        let mut ctx = RequestCtx::new(
            "id\"1".into(),
            "127.0.0.1:5000".parse().expect("addr"),
            "main".into(),
            0,
        );
        ctx.method = bytes::Bytes::from_static(b"GET");
        ctx.target = bytes::Bytes::from_static(b"/a\nb");
        ctx.status = 200;
        ctx.timings.end = Some(std::time::Instant::now());
        let mut buf = Vec::new();
        write_line(&mut buf, &ctx);
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
        assert_eq!(v["request_id"], "id\"1");
        assert_eq!(v["target"], "/a\nb");
        assert_eq!(v["status"], 200);
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert!(v["route"].is_null());
        assert!(v["consumer"].is_null() && v["quota_rejected"].is_null());
        ctx.consumer = Some("team-a".into());
        ctx.quota_rejected = Some("tokens");
        buf.clear();
        write_line(&mut buf, &ctx);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("valid JSON");
        assert_eq!(
            (v["consumer"].as_str(), v["quota_rejected"].as_str()),
            (Some("team-a"), Some("tokens"))
        );
    }
}
