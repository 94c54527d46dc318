//! Active HTTP health checks. One checker per cluster runs on the main thread's runtime (not on a
//! worker), probes each endpoint every interval, and flips the endpoint's shared health flag after
//! `unhealthy_threshold` failures or `healthy_threshold` passes in a row.
//!
//! A probe of a cluster with `proxy_protocol` is the gateway's own connection: it starts with a
//! header that declares no client (v2 `LOCAL`, v1 `PROXY UNKNOWN`, as HAProxy's
//! `check-send-proxy` sends), so an endpoint that requires the header can be checked.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::{open_with, SharedCluster, SharedEndpoint};
use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

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
            let ok = probe(ep, &hc, cluster.tls.as_ref(), pp).await;
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
/// client when `proxy_protocol` is given), pass on an expected status within the timeout.
pub async fn probe(
    ep: &SharedEndpoint,
    hc: &weir_config::HealthCheck,
    tls: Option<&weir_tls::Connector>,
    proxy_protocol: Option<weir_config::ProxyProtocolVersion>,
) -> bool {
    let Some(addr) = ep.connect_addr() else {
        return false;
    };
    let host = hc.host.as_deref().unwrap_or(&ep.address);
    let fut = async {
        let preface = proxy_protocol.map(|v| crate::proxy_protocol::header(v, None));
        let mut s = open_with(addr, &ep.address, tls, preface).await.ok()?;
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
                Ok(Some(head)) => return Some(head.status),
                Ok(None) => continue,
                Err(_) => return None,
            }
        }
    };
    match monoio::time::timeout(hc.timeout.get(), fut).await {
        Ok(Some(status)) => {
            if hc.expected_statuses.is_empty() {
                (200..400).contains(&status)
            } else {
                hc.expected_statuses.contains(&status)
            }
        }
        _ => false,
    }
}
