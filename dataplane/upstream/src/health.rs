//! Active HTTP health checks. One checker per cluster runs on the main thread's runtime (not on a
//! worker), probes each endpoint every interval, and flips the endpoint's shared health flag after
//! `unhealthy_threshold` failures or `healthy_threshold` passes in a row.
//!
//! A probe of a cluster with `proxy_protocol` is the gateway's own connection: it starts with a
//! header that declares no client (v2 `LOCAL`, v1 `PROXY UNKNOWN`, as HAProxy's
//! `check-send-proxy` sends), so an endpoint that requires the header can be checked.
//!
//! A `protocol: h2` cluster is probed over HTTP/2 (its servers may speak nothing else, as gRPC
//! servers do): a GET of the path, or with `grpc` the gRPC health protocol's
//! `grpc.health.v1.Health/Check`, which passes on `SERVING` with `grpc-status` 0.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use crate::shared::{open_with, SharedCluster, SharedEndpoint};
use bytes::{BufMut, Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use weir_config::{HealthCheck, UpstreamProtocol};

/// Runs the health checks of `cluster` until `stop` is set. Returns at once if it has none.
pub async fn run_health_checks(cluster: Arc<SharedCluster>, stop: Rc<Cell<bool>>) {
    let Some(hc) = cluster.config.health_check.clone() else {
        return;
    };
    let mut passes = vec![0u32; cluster.endpoints.len()];
    let mut fails = vec![0u32; cluster.endpoints.len()];
    while !stop.get() {
        for (i, ep) in cluster.endpoints.iter().enumerate() {
            let pp = cluster.config.proxy_protocol;
            let h2 = cluster.config.protocol == UpstreamProtocol::H2;
            let ok = probe(ep, &hc, cluster.tls.as_ref(), pp, h2).await;
            if ok {
                passes[i] += 1;
                fails[i] = 0;
                if !ep.healthy.load(Relaxed) && passes[i] >= hc.healthy_threshold {
                    ep.healthy.store(true, Relaxed);
                    tracing::info!(cluster = %cluster.config.name, endpoint = %ep.address, "endpoint healthy again");
                }
            } else {
                fails[i] += 1;
                passes[i] = 0;
                if ep.healthy.load(Relaxed) && fails[i] >= hc.unhealthy_threshold {
                    ep.healthy.store(false, Relaxed);
                    tracing::warn!(cluster = %cluster.config.name, endpoint = %ep.address, "endpoint failed health checks; taken out");
                }
            }
        }
        // Sleep in short steps so a stop is noticed soon after a reload.
        let mut left = hc.interval.get();
        while !left.is_zero() && !stop.get() {
            let step = left.min(Duration::from_millis(100));
            monoio::time::sleep(step).await;
            left -= step;
        }
    }
}

/// One probe: GET the path (over TLS for a TLS cluster, after a PROXY header that declares no
/// client when `proxy_protocol` is given; over HTTP/2 when `h2`), pass on an expected status
/// within the timeout; or, with `grpc`, the gRPC health check.
pub async fn probe(
    ep: &SharedEndpoint,
    hc: &HealthCheck,
    tls: Option<&weir_tls::Connector>,
    proxy_protocol: Option<weir_config::ProxyProtocolVersion>,
    h2: bool,
) -> bool {
    let Some(addr) = ep.connect_addr() else {
        return false;
    };
    let host = hc.host.as_deref().unwrap_or(&ep.address);
    let fut = async {
        let preface = proxy_protocol.map(|v| crate::proxy_protocol::header(v, None));
        let mut s = open_with(addr, &ep.address, tls, preface).await.ok()?;
        if h2 {
            let scheme = if tls.is_some() { "https" } else { "http" };
            return probe_h2(s, scheme, host, hc).await;
        }
        let req = format!(
            "GET {} HTTP/1.1\r\nhost: {host}\r\nuser-agent: weir-health-check\r\nconnection: close\r\n\r\n",
            hc.path
        );
        let (r, _) = s.write_all(req.into_bytes()).await;
        r.ok()?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let len = buf.len();
            if buf.capacity() - len < 1024 {
                buf.reserve(4096);
            }
            let cap = buf.capacity();
            let (r, slice) = s
                .read(monoio::buf::IoBufMut::slice_mut(buf, len..cap))
                .await;
            buf = slice.into_inner();
            if r.ok()? == 0 {
                return None;
            }
            match weir_http::parse_response(&mut buf, 64 << 10, false) {
                Ok(Some(head)) => return Some(Answer::Status(head.status)),
                Ok(None) => continue,
                Err(_) => return None,
            }
        }
    };
    match monoio::time::timeout(hc.timeout.get(), fut).await {
        Ok(Some(Answer::Status(status))) => {
            if hc.expected_statuses.is_empty() {
                (200..400).contains(&status)
            } else {
                hc.expected_statuses.contains(&status)
            }
        }
        Ok(Some(Answer::Serving(serving))) => serving,
        _ => false,
    }
}

/// What a probe got back.
enum Answer {
    /// An HTTP status.
    Status(u16),
    /// A gRPC health check's verdict: `SERVING` with `grpc-status` 0.
    Serving(bool),
}

/// A probe over an HTTP/2 connection of its own. The connection is driven beside the request in
/// one future, so a timeout drops both (and closes the socket).
async fn probe_h2(
    stream: weir_tls::MaybeTls,
    scheme: &str,
    host: &str,
    hc: &HealthCheck,
) -> Option<Answer> {
    let (rd, wr) = stream.into_split();
    let (send, conn) = h2::client::handshake(weir_h2::Io::new(rd, wr, Vec::new()))
        .await
        .ok()?;
    let ask = async {
        let mut send = send.ready().await.ok()?;
        let Some(grpc) = &hc.grpc else {
            let req = http::Request::get(format!("{scheme}://{host}{}", hc.path))
                .header("user-agent", "weir-health-check")
                .body(())
                .ok()?;
            let (resp, _) = send.send_request(req, true).ok()?;
            return Some(Answer::Status(resp.await.ok()?.status().as_u16()));
        };
        let req = http::Request::post(format!("{scheme}://{host}{GRPC_HEALTH_CHECK}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "weir-health-check")
            .body(())
            .ok()?;
        let (resp, mut body) = send.send_request(req, false).ok()?;
        body.send_data(grpc_health_request(&grpc.service), true)
            .ok()?;
        let resp = resp.await.ok()?;
        if resp.status() != http::StatusCode::OK {
            return Some(Answer::Serving(false));
        }
        if resp.headers().contains_key("grpc-status") {
            // Trailers-only: an error (or an OK with no message, which is not SERVING).
            return Some(Answer::Serving(false));
        }
        let mut body = resp.into_body();
        let mut msg = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.ok()?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if msg.len() + chunk.len() > 64 << 10 {
                return None;
            }
            msg.extend_from_slice(&chunk);
        }
        let ok = body
            .trailers()
            .await
            .ok()?
            .is_some_and(|t| t.get("grpc-status").is_some_and(|s| s == "0"));
        Some(Answer::Serving(ok && grpc_serving(&msg)))
    };
    let mut ask = pin!(ask);
    let mut conn = pin!(conn);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = ask.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        match conn.as_mut().poll(cx) {
            // The connection ended before the answer.
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The gRPC health protocol's method.
const GRPC_HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// A `HealthCheckRequest { service }` as one uncompressed gRPC message.
fn grpc_health_request(service: &str) -> Bytes {
    let mut pb = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        pb.push(0x0a); // field 1, length-delimited
        let mut n = service.len();
        while n >= 0x80 {
            pb.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        pb.push(n as u8);
        pb.extend_from_slice(service.as_bytes());
    }
    let mut out = BytesMut::with_capacity(5 + pb.len());
    out.put_u8(0);
    out.put_u32(pb.len() as u32);
    out.extend_from_slice(&pb);
    out.freeze()
}

/// Whether the gRPC message body is one uncompressed `HealthCheckResponse` whose `status`
/// (field 1) is `SERVING` (1). Unknown fields are skipped; anything malformed is not serving.
fn grpc_serving(body: &[u8]) -> bool {
    let Some((&[0, a, b, c, d], pb)) = body.split_first_chunk::<5>() else {
        return false;
    };
    if u32::from_be_bytes([a, b, c, d]) as usize != pb.len() {
        return false;
    }
    let mut pb = pb;
    let mut status = 0;
    while !pb.is_empty() {
        let Some(tag) = varint(&mut pb) else {
            return false;
        };
        match tag & 7 {
            0 => match varint(&mut pb) {
                Some(v) if tag >> 3 == 1 => status = v,
                Some(_) => {}
                None => return false,
            },
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                let Some(rest) = pb.get(n..) else {
                    return false;
                };
                pb = rest;
            }
            2 => {
                let Some(rest) = varint(&mut pb).and_then(|n| pb.get(n as usize..)) else {
                    return false;
                };
                pb = rest;
            }
            _ => return false,
        }
    }
    status == 1
}

/// Reads a protobuf varint off the front of `pb`.
fn varint(pb: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in pb.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *pb = &pb[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod grpc_tests {
    use super::*;

    #[test]
    fn health_request_and_response_encoding() {
        assert_eq!(&grpc_health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &grpc_health_request("echo.Echo")[..],
            b"\0\0\0\0\x0b\x0a\x09echo.Echo"
        );
        let long = "s".repeat(200);
        let r = grpc_health_request(&long);
        assert_eq!(&r[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(r.len(), 5 + 3 + 200);
        // SERVING, NOT_SERVING, the default (UNKNOWN), an unknown field before the status,
        // a compressed message, a length that lies, a truncated varint.
        assert!(grpc_serving(b"\0\0\0\0\x02\x08\x01"));
        assert!(!grpc_serving(b"\0\0\0\0\x02\x08\x02"));
        assert!(!grpc_serving(b"\0\0\0\0\0"));
        assert!(grpc_serving(b"\0\0\0\0\x06\x12\x02hi\x08\x01"));
        assert!(!grpc_serving(b"\x01\0\0\0\x02\x08\x01"));
        assert!(!grpc_serving(b"\0\0\0\0\x05\x08\x01"));
        assert!(!grpc_serving(b"\0\0\0\0\x02\x08\x81"));
        assert!(!grpc_serving(b""));
    }
}
