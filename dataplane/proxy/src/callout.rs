//! HTTP callouts of Wasm plugins (`proxy_http_call`): sent to a configured cluster through this
//! core's connection pools, HTTP/1.1, the whole answer read (up to a cap) within the plugin's
//! timeout. Only routes with a plugin that makes callouts ever come here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use weir_http::BodyDecoder;
use weir_upstream::{Cluster, UpstreamConn};
use weir_wasm::{CallAnswer, Callout};

use crate::io::{read_upstream, reserve, write_upstream, BODY_READ};

/// Largest callout answer (head and body) kept.
const MAX_ANSWER: usize = 1 << 20;

/// The clusters of one core, as a plugin's callout client.
pub struct ClusterCallouts {
    clusters: HashMap<String, Rc<Cluster>>,
}

impl ClusterCallouts {
    /// Over this core's clusters.
    pub fn new(clusters: &HashMap<String, Rc<Cluster>>) -> Self {
        ClusterCallouts {
            clusters: clusters.clone(),
        }
    }
}

impl weir_wasm::Callouts for ClusterCallouts {
    fn send(&self, call: Callout) -> Pin<Box<dyn Future<Output = Result<CallAnswer, String>>>> {
        let cluster = self.clusters.get(&call.cluster).cloned();
        Box::pin(async move {
            let cluster = cluster.ok_or_else(|| format!("no cluster `{}`", call.cluster))?;
            match monoio::time::timeout(call.timeout, exchange(&cluster, &call)).await {
                Ok(r) => r,
                Err(_) => Err(format!("callout to `{}` timed out", call.cluster)),
            }
        })
    }
}

async fn exchange(cluster: &Cluster, call: &Callout) -> Result<CallAnswer, String> {
    let now = Instant::now();
    let (_, ep) = cluster.pick_at(now, None, &[]).map_err(|e| e.to_string())?;
    let mut conn = cluster
        .acquire_at(now, &ep)
        .await
        .map_err(|e| e.to_string())?;
    cluster.begin(&ep);
    let res = talk(&mut conn, call, &cluster.name).await;
    let (ok, reusable) = match &res {
        Ok((a, reusable)) => (
            a.headers.first().is_some_and(|(_, s)| s[0] != b'5'),
            *reusable,
        ),
        Err(_) => (false, false),
    };
    cluster.end(&ep, !ok);
    cluster.release_at(Instant::now(), conn, reusable);
    res.map(|(a, _)| a)
}

/// Writes the request, reads the answer; whether the connection may be reused.
async fn talk(
    conn: &mut UpstreamConn,
    call: &Callout,
    cluster: &str,
) -> Result<(CallAnswer, bool), String> {
    let pseudo = |n: &[u8]| {
        call.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_slice())
    };
    let method = pseudo(b":method").unwrap_or(b"GET");
    let path = pseudo(b":path").unwrap_or(b"/");
    let authority = pseudo(b":authority").unwrap_or(cluster.as_bytes());
    let mut out = Vec::with_capacity(256 + call.body.len());
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority);
    out.extend_from_slice(b"\r\n");
    for (k, v) in &call.headers {
        if k.first() == Some(&b':')
            || k.eq_ignore_ascii_case(b"host")
            || weir_wasm::context::managed(k)
        {
            continue;
        }
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !call.body.is_empty() || !matches!(method, b"GET" | b"HEAD" | b"DELETE" | b"OPTIONS") {
        out.extend_from_slice(format!("content-length: {}\r\n", call.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&call.body);
    let (r, _) = write_upstream(&mut conn.stream, out).await;
    r.map_err(|e| format!("write: {e}"))?;

    let is_head = method == b"HEAD";
    let mut buf = BytesMut::with_capacity(BODY_READ);
    let resp = loop {
        if let Some(resp) =
            weir_http::parse_response(&mut buf, 64 << 10, is_head).map_err(|e| e.to_string())?
        {
            if (100..200).contains(&resp.status) {
                continue;
            }
            break resp;
        }
        read_more(conn, &mut buf).await?;
    };
    let mut dec = BodyDecoder::new(resp.body);
    let mut body = BytesMut::new();
    let clean = loop {
        let scan = dec
            .scan(&buf, |r| body.extend_from_slice(&buf[r]))
            .map_err(|e| e.to_string())?;
        let _ = buf.split_to(scan.consumed);
        if scan.done {
            break buf.is_empty();
        }
        if body.len() > MAX_ANSWER {
            return Err("callout answer too large".into());
        }
        match read_more(conn, &mut buf).await {
            Ok(()) => {}
            // A close-delimited body ends with the connection.
            Err(_) if dec.kind() == weir_http::BodyKind::UntilClose => break false,
            Err(e) => return Err(e),
        }
    };
    let mut headers = Vec::with_capacity(resp.headers.len() + 1);
    headers.push((
        Bytes::from_static(b":status"),
        Bytes::from(resp.status.to_string()),
    ));
    for f in resp.headers.iter() {
        headers.push((Bytes::from(f.name.to_ascii_lowercase()), f.value.clone()));
    }
    Ok((
        CallAnswer {
            headers,
            body: body.freeze(),
        },
        clean && resp.keep_alive,
    ))
}

async fn read_more(conn: &mut UpstreamConn, buf: &mut BytesMut) -> Result<(), String> {
    reserve(buf, BODY_READ);
    let len = buf.len();
    let cap = buf.capacity();
    let (r, slice) = read_upstream(&mut conn.stream, std::mem::take(buf).slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    match r {
        Ok(0) => Err("the upstream closed the connection".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}
