//! The Proxy-Wasm 0.2.1 host functions (module `env`). Each one works on the [`Exchange`] of the
//! callback running now; a call that makes no sense at this point answers `NotFound` or
//! `BadArgument`, an unsupported one `Unimplemented`, and a bad pointer is an ABI misuse that
//! fails the callback (after answering `InvalidMemoryAccess`).

use bytes::Bytes;
use wasmtime::{Caller, Linker};

use crate::abi::{self, buffer, map, stream, Status};
use crate::context::{managed, CallAnswer, Callout, Exchange};
use crate::memory::{bad_read, give, read, write_at, write_u32, HostResult};
use crate::state::HostState;
use crate::{metrics, props, shared};

const ENV: &str = "env";

/// Every host function defined here, by name (other `proxy_*` imports answer `Unimplemented`).
pub const DEFINED: [&str; 34] = [
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_send_local_response",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_continue_request",
    "proxy_continue_response",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_http_call",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
    "proxy_set_effective_context",
    "proxy_done",
    "proxy_call_foreign_function",
];

type C<'a> = Caller<'a, HostState>;

macro_rules! read_or_fail {
    ($c:expr, $p:expr, $n:expr) => {
        match read($c, $p, $n) {
            Some(v) => v,
            None => return bad_read(),
        }
    };
}

/// Adds every `proxy_*` host function to `linker`.
pub fn add(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // === logs, time, timers ===
    l.func_wrap(
        ENV,
        "proxy_log",
        |mut c: C<'_>, level: i32, p: i32, n: i32| -> HostResult {
            let msg = read_or_fail!(&mut c, p, n);
            let msg = String::from_utf8_lossy(&msg);
            let plugin = c.data().plugin.name.as_str();
            match level {
                abi::log_level::TRACE => tracing::trace!(target: "weir_wasm", plugin, "{msg}"),
                abi::log_level::DEBUG => tracing::debug!(target: "weir_wasm", plugin, "{msg}"),
                abi::log_level::INFO => tracing::info!(target: "weir_wasm", plugin, "{msg}"),
                abi::log_level::WARN => tracing::warn!(target: "weir_wasm", plugin, "{msg}"),
                abi::log_level::ERROR | abi::log_level::CRITICAL => {
                    tracing::error!(target: "weir_wasm", plugin, "{msg}")
                }
                _ => return Ok(Status::BadArgument.code()),
            }
            Ok(Status::Ok.code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_log_level",
        |mut c: C<'_>, out: i32| -> HostResult {
            let level = if tracing::enabled!(target: "weir_wasm", tracing::Level::TRACE) {
                abi::log_level::TRACE
            } else if tracing::enabled!(target: "weir_wasm", tracing::Level::DEBUG) {
                abi::log_level::DEBUG
            } else if tracing::enabled!(target: "weir_wasm", tracing::Level::INFO) {
                abi::log_level::INFO
            } else if tracing::enabled!(target: "weir_wasm", tracing::Level::WARN) {
                abi::log_level::WARN
            } else if tracing::enabled!(target: "weir_wasm", tracing::Level::ERROR) {
                abi::log_level::ERROR
            } else {
                // Nothing is logged: only CRITICAL could be (and goes out as an error).
                abi::log_level::CRITICAL
            };
            Ok(status_of(write_u32(&mut c, out, level as u32)))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, out: i32| -> HostResult {
            let ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            Ok(status_of(write_at(&mut c, out, &ns.to_le_bytes())))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, ms: i32| -> HostResult {
            c.data_mut().tick_ms = ms as u32;
            Ok(Status::Ok.code())
        },
    )?;

    // === buffers ===
    l.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, ty: i32, start: i32, max: i32, rp: i32, rs: i32| -> HostResult {
            let Some(all) = buffer_of(c.data(), ty) else {
                return Ok(Status::NotFound.code());
            };
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            if start > all.len() {
                return Ok(Status::BadArgument.code());
            }
            let end = start.saturating_add(max).min(all.len());
            let slice = all.slice(start..end);
            give(&mut c, &slice, rp, rs)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, ty: i32, start: i32, size: i32, p: i32, n: i32| -> HostResult {
            let data = read_or_fail!(&mut c, p, n);
            let ex = &mut c.data_mut().ex;
            let Some(b) = ex.body.as_mut().filter(|b| b.kind == ty) else {
                return Ok(
                    if ty == buffer::HTTP_REQUEST_BODY || ty == buffer::HTTP_RESPONSE_BODY {
                        Status::NotFound.code()
                    } else {
                        Status::Unimplemented.code()
                    },
                );
            };
            if !b.writable {
                // A read-only chunk (a body streamed past the plugin).
                return Ok(Status::Unimplemented.code());
            }
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            if start > b.data.len() {
                return Ok(Status::BadArgument.code());
            }
            let end = start.saturating_add(size).min(b.data.len());
            let mut next =
                bytes::BytesMut::with_capacity(b.data.len() - (end - start) + data.len());
            next.extend_from_slice(&b.data[..start]);
            next.extend_from_slice(&data);
            next.extend_from_slice(&b.data[end..]);
            b.data = next;
            b.changed = true;
            Ok(Status::Ok.code())
        },
    )?;

    // === header maps ===
    l.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, ty: i32, rp: i32, rs: i32| -> HostResult {
            if !known_map(ty) {
                return Ok(Status::BadArgument.code());
            }
            let Some(pairs) = pairs_of(&c.data().ex, ty) else {
                return Ok(Status::NotFound.code());
            };
            let enc = abi::encode_map(pairs.iter().map(|(k, v)| (&k[..], &v[..])));
            give(&mut c, &enc, rp, rs)
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, ty: i32, p: i32, n: i32| -> HostResult {
            let data = read_or_fail!(&mut c, p, n);
            let Some(pairs) = abi::decode_map(&data) else {
                return Ok(Status::ParseFailure.code());
            };
            let ex = &mut c.data_mut().ex;
            if pairs_of(ex, ty).is_none() || (is_trailer_map(ty) && trailers_of(ex, ty).is_none()) {
                return Ok(Status::NotFound.code());
            }
            if pairs.iter().any(|(k, v)| !valid(k, v)) {
                return Ok(Status::BadArgument.code());
            }
            clear_map(ex, ty);
            for (k, v) in pairs {
                edit(ex, ty, Edit::Add, k, Some(v));
            }
            Ok(Status::Ok.code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        |mut c: C<'_>, ty: i32, kp: i32, kn: i32, rp: i32, rs: i32| -> HostResult {
            let key = read_or_fail!(&mut c, kp, kn);
            match value_of(&c.data().ex, ty, &key) {
                Lookup::Found(v) => give(&mut c, &v, rp, rs),
                Lookup::Missing | Lookup::NoMap => Ok(Status::NotFound.code()),
            }
        },
    )?;
    for (name, op) in [
        ("proxy_add_header_map_value", Edit::Add),
        ("proxy_replace_header_map_value", Edit::Replace),
    ] {
        l.func_wrap(
            ENV,
            name,
            move |mut c: C<'_>, ty: i32, kp: i32, kn: i32, vp: i32, vn: i32| -> HostResult {
                let key = read_or_fail!(&mut c, kp, kn);
                let value = read_or_fail!(&mut c, vp, vn);
                if !valid(&key, &value) {
                    return Ok(Status::BadArgument.code());
                }
                Ok(edit(&mut c.data_mut().ex, ty, op, key, Some(value)).code())
            },
        )?;
    }
    l.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        |mut c: C<'_>, ty: i32, kp: i32, kn: i32| -> HostResult {
            let key = read_or_fail!(&mut c, kp, kn);
            Ok(edit(&mut c.data_mut().ex, ty, Edit::Remove, key, None).code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_get_header_map_size",
        |mut c: C<'_>, ty: i32, out: i32| -> HostResult {
            if !known_map(ty) {
                return Ok(Status::BadArgument.code());
            }
            let Some(pairs) = pairs_of(&c.data().ex, ty) else {
                return Ok(Status::NotFound.code());
            };
            let size = abi::encode_map(pairs.iter().map(|(k, v)| (&k[..], &v[..]))).len();
            Ok(status_of(write_u32(&mut c, out, size as u32)))
        },
    )?;

    // === properties ===
    l.func_wrap(
        ENV,
        "proxy_get_property",
        |mut c: C<'_>, p: i32, n: i32, rp: i32, rs: i32| -> HostResult {
            let path = read_or_fail!(&mut c, p, n);
            match props::get(c.data(), &path) {
                Some(v) => give(&mut c, &v, rp, rs),
                None => Ok(Status::NotFound.code()),
            }
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_property",
        |mut c: C<'_>, p: i32, n: i32, vp: i32, vn: i32| -> HostResult {
            let path = read_or_fail!(&mut c, p, n);
            let value = read_or_fail!(&mut c, vp, vn);
            Ok(props::set(c.data_mut(), path, value).code())
        },
    )?;

    // === stream control ===
    l.func_wrap(
        ENV,
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         dp: i32,
         dn: i32,
         bp: i32,
         bn: i32,
         hp: i32,
         hn: i32,
         _grpc: i32|
         -> HostResult {
            let _details = read_or_fail!(&mut c, dp, dn);
            let body = read_or_fail!(&mut c, bp, bn);
            let hdrs = read_or_fail!(&mut c, hp, hn);
            if !(200..=599).contains(&status) {
                return Ok(Status::BadArgument.code());
            }
            let pairs = if hdrs.is_empty() {
                Vec::new()
            } else {
                match abi::decode_map(&hdrs) {
                    Some(p) => p,
                    None => return Ok(Status::ParseFailure.code()),
                }
            };
            let mut resp = weir_filter::LocalResponse::empty(status as u16);
            for (k, v) in pairs {
                if !valid(&k, &v) || managed(&k) || k.first() == Some(&b':') {
                    continue;
                }
                resp.headers
                    .append(Bytes::from(k.to_ascii_lowercase()), Bytes::from(v));
            }
            resp.body = Bytes::from(body);
            c.data_mut().ex.local = Some(resp);
            Ok(Status::Ok.code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_continue_stream",
        |mut c: C<'_>, ty: i32| -> HostResult {
            if ty != stream::HTTP_REQUEST && ty != stream::HTTP_RESPONSE {
                return Ok(Status::BadArgument.code());
            }
            resume(c.data_mut());
            Ok(Status::Ok.code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_close_stream",
        |mut c: C<'_>, ty: i32| -> HostResult {
            if ty != stream::HTTP_REQUEST && ty != stream::HTTP_RESPONSE {
                return Ok(Status::BadArgument.code());
            }
            c.data_mut().ex.closed = true;
            Ok(Status::Ok.code())
        },
    )?;
    for name in ["proxy_continue_request", "proxy_continue_response"] {
        l.func_wrap(ENV, name, |mut c: C<'_>| -> HostResult {
            resume(c.data_mut());
            Ok(Status::Ok.code())
        })?;
    }

    // === shared data and queues ===
    l.func_wrap(
        ENV,
        "proxy_get_shared_data",
        |mut c: C<'_>, kp: i32, kn: i32, rp: i32, rs: i32, rcas: i32| -> HostResult {
            let key = read_or_fail!(&mut c, kp, kn);
            let Some((v, cas)) = shared::get(&key) else {
                return Ok(Status::NotFound.code());
            };
            let st = give(&mut c, &v, rp, rs)?;
            if st != Status::Ok.code() {
                return Ok(st);
            }
            Ok(status_of(write_u32(&mut c, rcas, cas)))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_set_shared_data",
        |mut c: C<'_>, kp: i32, kn: i32, vp: i32, vn: i32, cas: i32| -> HostResult {
            let key = read_or_fail!(&mut c, kp, kn);
            let value = read_or_fail!(&mut c, vp, vn);
            Ok(shared::set(&key, &value, cas as u32).code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_register_shared_queue",
        |mut c: C<'_>, np: i32, nn: i32, out: i32| -> HostResult {
            let name = read_or_fail!(&mut c, np, nn);
            let st = c.data();
            let id = shared::register(&st.plugin.name, &name, &st.ready);
            Ok(status_of(write_u32(&mut c, out, id)))
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vp: i32, vn: i32, np: i32, nn: i32, out: i32| -> HostResult {
            let vm = read_or_fail!(&mut c, vp, vn);
            let name = read_or_fail!(&mut c, np, nn);
            // An empty VM id means the caller's own.
            let vm = if vm.is_empty() {
                c.data().plugin.name.clone()
            } else {
                String::from_utf8_lossy(&vm).into_owned()
            };
            match shared::resolve(&vm, &name) {
                Some(id) => Ok(status_of(write_u32(&mut c, out, id))),
                None => Ok(Status::NotFound.code()),
            }
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: i32, vp: i32, vn: i32| -> HostResult {
            let value = read_or_fail!(&mut c, vp, vn);
            Ok(shared::enqueue(id as u32, &value).code())
        },
    )?;
    l.func_wrap(
        ENV,
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, rp: i32, rs: i32| -> HostResult {
            match shared::dequeue(id as u32) {
                Ok(v) => give(&mut c, &v, rp, rs),
                Err(s) => Ok(s.code()),
            }
        },
    )?;

    // === callouts ===
    l.func_wrap(
        ENV,
        "proxy_http_call",
        |mut c: C<'_>,
         up: i32,
         un: i32,
         hp: i32,
         hn: i32,
         bp: i32,
         bn: i32,
         _tp: i32,
         _tn: i32,
         timeout_ms: i32,
         out: i32|
         -> HostResult {
            let upstream = read_or_fail!(&mut c, up, un);
            let hdrs = read_or_fail!(&mut c, hp, hn);
            let body = read_or_fail!(&mut c, bp, bn);
            let Some(headers) = abi::decode_map(&hdrs) else {
                return Ok(Status::ParseFailure.code());
            };
            let need = |n: &[u8]| headers.iter().any(|(k, _)| k == n);
            if !need(b":path") || !need(b":method") || headers.iter().any(|(k, v)| !valid(k, v)) {
                return Ok(Status::BadArgument.code());
            }
            let Ok(cluster) = String::from_utf8(upstream) else {
                return Ok(Status::BadArgument.code());
            };
            let st = c.data_mut();
            let token = st.next_token;
            st.next_token = st.next_token.wrapping_add(1).max(1);
            st.ex.callouts.push(Callout {
                token,
                cluster,
                headers,
                body,
                timeout: std::time::Duration::from_millis(timeout_ms.clamp(1, 60_000) as u64),
            });
            Ok(status_of(write_u32(&mut c, out, token)))
        },
    )?;

    // === metrics ===
    l.func_wrap(
        ENV,
        "proxy_define_metric",
        |mut c: C<'_>, ty: i32, np: i32, nn: i32, out: i32| -> HostResult {
            let name = read_or_fail!(&mut c, np, nn);
            match metrics::define(&c.data().plugin.name, ty, &name) {
                Ok(id) => Ok(status_of(write_u32(&mut c, out, id))),
                Err(s) => Ok(s.code()),
            }
        },
    )?;
    l.func_wrap(ENV, "proxy_increment_metric", |id: i32, by: i64| -> i32 {
        match metrics::get(id as u32) {
            Some(m) => m.increment(by).code(),
            None => Status::NotFound.code(),
        }
    })?;
    l.func_wrap(ENV, "proxy_record_metric", |id: i32, v: i64| -> i32 {
        match metrics::get(id as u32) {
            Some(m) => m.record(v as u64).code(),
            None => Status::NotFound.code(),
        }
    })?;
    l.func_wrap(
        ENV,
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, out: i32| -> HostResult {
            match metrics::get(id as u32) {
                Some(m) => Ok(status_of(write_at(&mut c, out, &m.value().to_le_bytes()))),
                None => Ok(Status::NotFound.code()),
            }
        },
    )?;

    // === contexts ===
    l.func_wrap(
        ENV,
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| -> HostResult {
            // Only the contexts alive in this instance. Host calls keep working on the data of
            // the callback running now (its request or answer), whichever context is effective.
            let st = c.data_mut();
            if !st.contexts.contains(&(id as u32)) {
                return Ok(Status::BadArgument.code());
            }
            st.effective = id as u32;
            Ok(Status::Ok.code())
        },
    )?;
    l.func_wrap(ENV, "proxy_done", || -> i32 { Status::Ok.code() })?;
    l.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        |_: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { Status::Unimplemented.code() },
    )?;
    Ok(())
}

fn status_of(ok: bool) -> i32 {
    if ok {
        Status::Ok.code()
    } else {
        Status::InvalidMemoryAccess.code()
    }
}

/// No CR, LF or NUL anywhere, and a name that is not empty: nothing that could split a head.
fn valid(name: &[u8], value: &[u8]) -> bool {
    let breaks = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    let bare = name.strip_prefix(b":").unwrap_or(name);
    !bare.is_empty()
        && !bare
            .iter()
            .any(|b| breaks(b) || matches!(b, b' ' | b'\t' | b':'))
        && !value.iter().any(breaks)
}

/// A map id of the ABI, whether or not that map exists in the callback running now (0–7: the
/// request's and response's headers and trailers, gRPC metadata, a callout's answer).
fn known_map(ty: i32) -> bool {
    (0..=7).contains(&ty)
}

fn buffer_of(st: &HostState, ty: i32) -> Option<Bytes> {
    match ty {
        buffer::HTTP_REQUEST_BODY | buffer::HTTP_RESPONSE_BODY => st
            .ex
            .body
            .as_ref()
            .filter(|b| b.kind == ty)
            .map(|b| Bytes::copy_from_slice(&b.data)),
        buffer::HTTP_CALL_RESPONSE_BODY => st.ex.answer.as_ref().map(|a| a.body.clone()),
        buffer::VM_CONFIGURATION => Some(Bytes::from(st.plugin.vm_config.clone())),
        buffer::PLUGIN_CONFIGURATION => Some(Bytes::from(st.plugin.config.clone())),
        _ => None,
    }
}

/// The pairs of a map as the plugin sees them, pseudo-headers first.
fn pairs_of(ex: &Exchange, ty: i32) -> Option<Vec<(Bytes, Bytes)>> {
    let fields = |h: &weir_http::Headers, out: &mut Vec<(Bytes, Bytes)>| {
        for f in h.iter() {
            out.push((Bytes::from(f.name.to_ascii_lowercase()), f.value.clone()));
        }
    };
    match ty {
        map::HTTP_REQUEST_HEADERS => {
            let r = ex.req.as_ref()?;
            let mut out = Vec::with_capacity(r.headers.len() + 4);
            out.push((Bytes::from_static(b":authority"), r.host.clone()));
            out.push((Bytes::from_static(b":method"), r.method.clone()));
            out.push((Bytes::from_static(b":path"), r.target.clone()));
            out.push((Bytes::from_static(b":scheme"), Bytes::from_static(b"http")));
            fields(&r.headers, &mut out);
            Some(out)
        }
        map::HTTP_RESPONSE_HEADERS => {
            let r = ex.resp.as_ref()?;
            let mut out = Vec::with_capacity(r.headers.len() + 1);
            out.push((
                Bytes::from_static(b":status"),
                Bytes::from(r.status.to_string()),
            ));
            fields(&r.headers, &mut out);
            Some(out)
        }
        map::HTTP_CALL_RESPONSE_HEADERS => {
            ex.answer.as_ref().map(|a: &CallAnswer| a.headers.clone())
        }
        // The trailers while their callback runs; in any other callback of a request, an empty
        // map (SDKs treat an error from reading a map as fatal); outside requests, none.
        map::HTTP_REQUEST_TRAILERS | map::HTTP_RESPONSE_TRAILERS => match trailers_of(ex, ty) {
            Some(t) => {
                let mut out = Vec::with_capacity(t.len());
                fields(t, &mut out);
                Some(out)
            }
            None => ex.props.as_ref().map(|_| Vec::new()),
        },
        map::HTTP_CALL_RESPONSE_TRAILERS => ex.answer.as_ref().map(|_| Vec::new()),
        _ => None,
    }
}

/// Map 1 or 3.
fn is_trailer_map(ty: i32) -> bool {
    ty == map::HTTP_REQUEST_TRAILERS || ty == map::HTTP_RESPONSE_TRAILERS
}

/// The trailers of map `ty`, when its trailer callback runs now.
fn trailers_of(ex: &Exchange, ty: i32) -> Option<&weir_http::Headers> {
    ex.trailers
        .as_ref()
        .filter(|t| t.map == ty)
        .map(|t| &t.fields)
}

enum Lookup {
    Found(Bytes),
    Missing,
    NoMap,
}

/// One field of a map, found without building the whole list (the common call).
fn value_of(ex: &Exchange, ty: i32, key: &[u8]) -> Lookup {
    let field = |h: &weir_http::Headers| {
        let found = std::str::from_utf8(key)
            .ok()
            .and_then(|k| h.value(k))
            .map(Bytes::copy_from_slice);
        found.map_or(Lookup::Missing, Lookup::Found)
    };
    match ty {
        map::HTTP_REQUEST_HEADERS => {
            let Some(r) = ex.req.as_ref() else {
                return Lookup::NoMap;
            };
            match key {
                b":authority" => Lookup::Found(r.host.clone()),
                b":method" => Lookup::Found(r.method.clone()),
                b":path" => Lookup::Found(r.target.clone()),
                b":scheme" => Lookup::Found(Bytes::from_static(b"http")),
                _ => field(&r.headers),
            }
        }
        map::HTTP_RESPONSE_HEADERS => {
            let Some(r) = ex.resp.as_ref() else {
                return Lookup::NoMap;
            };
            match key {
                b":status" => Lookup::Found(Bytes::from(r.status.to_string())),
                _ => field(&r.headers),
            }
        }
        other => match pairs_of(ex, other) {
            None => Lookup::NoMap,
            Some(pairs) => pairs
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map_or(Lookup::Missing, |(_, v)| Lookup::Found(v)),
        },
    }
}

#[derive(Clone, Copy)]
enum Edit {
    Add,
    Replace,
    Remove,
}

fn clear_map(ex: &mut Exchange, ty: i32) {
    match ty {
        map::HTTP_REQUEST_HEADERS => {
            if let Some(r) = ex.req.as_mut() {
                r.headers = weir_http::Headers::with_capacity(8);
                r.changed = true;
            }
        }
        map::HTTP_RESPONSE_HEADERS => {
            if let Some(r) = ex.resp.as_mut() {
                r.headers = weir_http::Headers::with_capacity(8);
                r.changed = true;
            }
        }
        map::HTTP_REQUEST_TRAILERS | map::HTTP_RESPONSE_TRAILERS => {
            if let Some(t) = ex.trailers.as_mut().filter(|t| t.map == ty) {
                t.fields = weir_http::Headers::with_capacity(4);
            }
        }
        _ => {}
    }
}

/// `proxy_continue_stream` and its 0.2.0 forms: continues the effective context's request when
/// the plugin paused it (from a tick, a queue callback or another request's callback); otherwise
/// the running callback's own request is continued (a `Pause` it answers then goes on).
fn resume(st: &mut HostState) {
    match st.paused.remove(&st.effective) {
        Some(p) => p.resume(),
        None => st.ex.resumed = true,
    }
}

/// An edit of a header map. The name and value read from the guest are owned already: the name is
/// lower-cased in place and both become the field without another copy.
fn edit(ex: &mut Exchange, ty: i32, op: Edit, mut key: Vec<u8>, value: Option<Vec<u8>>) -> Status {
    key.make_ascii_lowercase();
    let value = value.map(Bytes::from);
    if managed(&key) {
        // The gateway frames every message itself (these fields never reach a plugin): an edit
        // of one is accepted and has no effect, as SDKs treat any other answer as fatal.
        return Status::Ok;
    }
    match ty {
        map::HTTP_REQUEST_HEADERS => {
            let Some(r) = ex.req.as_mut() else {
                return Status::NotFound;
            };
            r.changed = true;
            let pseudo = match &key[..] {
                b":path" => Some(&mut r.target),
                b":method" => Some(&mut r.method),
                b":authority" => Some(&mut r.host),
                b":scheme" => return Status::Ok,
                k if k.first() == Some(&b':') => return Status::BadArgument,
                _ => None,
            };
            match (pseudo, op, value) {
                (Some(_), Edit::Remove, _) => Status::BadArgument,
                (Some(slot), _, Some(v)) => {
                    if v.is_empty() {
                        return Status::BadArgument;
                    }
                    if key == b":authority" {
                        r.headers.set(Bytes::from_static(b"host"), v.clone());
                    }
                    *slot = v;
                    Status::Ok
                }
                (None, op, v) => edit_fields(&mut r.headers, op, key, v),
                (Some(_), _, None) => Status::BadArgument,
            }
        }
        map::HTTP_RESPONSE_HEADERS => {
            let Some(r) = ex.resp.as_mut() else {
                return Status::NotFound;
            };
            r.changed = true;
            if key == b":status" {
                let code = value
                    .as_deref()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u16>().ok())
                    .filter(|c| (200..=599).contains(c));
                return match (op, code) {
                    (Edit::Remove, _) | (_, None) => Status::BadArgument,
                    (_, Some(c)) => {
                        r.status = c;
                        Status::Ok
                    }
                };
            }
            if key.first() == Some(&b':') {
                return Status::BadArgument;
            }
            edit_fields(&mut r.headers, op, key, value)
        }
        map::HTTP_REQUEST_TRAILERS | map::HTTP_RESPONSE_TRAILERS => {
            // Writable in their own callback only; a trailer has no pseudo-fields. Fields a
            // trailer may not carry besides the managed ones (`host`, ...) are accepted here
            // and dropped by the gateway when it writes the section.
            let Some(t) = ex.trailers.as_mut().filter(|t| t.map == ty) else {
                return Status::NotFound;
            };
            if key.first() == Some(&b':') {
                return Status::BadArgument;
            }
            edit_fields(&mut t.fields, op, key, value)
        }
        map::HTTP_CALL_RESPONSE_HEADERS | map::HTTP_CALL_RESPONSE_TRAILERS => Status::BadArgument,
        _ => Status::BadArgument,
    }
}

fn edit_fields(h: &mut weir_http::Headers, op: Edit, key: Vec<u8>, v: Option<Bytes>) -> Status {
    match (op, v) {
        (Edit::Add, Some(v)) => h.append(Bytes::from(key), v),
        (Edit::Replace, Some(v)) => h.set(Bytes::from(key), v),
        (Edit::Remove, _) => {
            if let Ok(k) = std::str::from_utf8(&key) {
                h.remove(k);
            }
        }
        (_, None) => return Status::BadArgument,
    }
    Status::Ok
}
