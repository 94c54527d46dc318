//! The admin API: one function, [`handle`], from a parsed request to a response. Every config it
//! returns goes through [`masked`] first; every error becomes JSON in [`ApiError::to_response`].
//!
//! The plane link (`POST /v1/planes/attach` with an upgrade) is taken over by the server before a
//! request reaches this module, since it keeps the connection.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use weir_config::{Cluster, Config, Route};

use crate::error::{ApiError, ApiProblem};
use crate::http::{percent_decode, Request, Response};
use crate::state::{Commit, Shared};
use crate::store::{Generation, Source};

/// Longest `?wait=` honoured, in seconds.
pub const MAX_WAIT_SECS: f64 = 300.0;
/// Longest `?comment=` kept, in characters.
const MAX_COMMENT: usize = 1000;

/// Answers one admin API request.
pub fn handle(shared: &Shared, req: &Request) -> Response {
    match route(shared, req) {
        Ok(r) => r,
        Err(e) => e.to_response(),
    }
}

fn route(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match segs.as_slice() {
        ["v1", "status"] => match m {
            "GET" => Ok(status(shared)),
            _ => not_allowed("GET"),
        },
        ["v1", "config"] => match m {
            "GET" => get_config(shared, req),
            "PUT" => put_config(shared, req),
            _ => not_allowed("GET, PUT"),
        },
        ["v1", "validate"] => match m {
            "POST" => Ok(validate(req)),
            _ => not_allowed("POST"),
        },
        ["v1", "clusters", name] => match m {
            "GET" => get_cluster(shared, req, name),
            "PUT" => put_cluster(shared, req, name),
            "DELETE" => delete_cluster(shared, req, name),
            _ => not_allowed("GET, PUT, DELETE"),
        },
        ["v1", "listeners", listener, "routes", name] => match m {
            "GET" => get_route(shared, req, listener, name),
            "PUT" => put_route(shared, req, listener, name),
            "DELETE" => delete_route(shared, req, listener, name),
            _ => not_allowed("GET, PUT, DELETE"),
        },
        ["v1", "generations"] => match m {
            "GET" => Ok(generations(shared)),
            _ => not_allowed("GET"),
        },
        ["v1", "generations", n] => match m {
            "GET" => get_generation(shared, req, n),
            _ => not_allowed("GET"),
        },
        ["v1", "diff"] => match m {
            "GET" => diff(shared, req),
            _ => not_allowed("GET"),
        },
        ["v1", "rollback", n] => match m {
            "POST" => rollback(shared, req, n),
            _ => not_allowed("POST"),
        },
        ["v1", "consumers", rest @ ..] => consumers::route(shared, req, rest),
        ["v1", "planes"] => match m {
            "GET" => Ok(planes(shared)),
            _ => not_allowed("GET"),
        },
        ["v1", "planes", "attach"] => Err(ApiError::new(
            426,
            "upgrade_required",
            format!(
                "attach with `Upgrade: {}` and `Connection: upgrade`",
                weir_protocol::UPGRADE
            ),
        )),
        _ => Err(ApiError::not_found(format!("no endpoint {}", req.path))),
    }
}

fn not_allowed(allow: &'static str) -> Result<Response, ApiError> {
    let mut r = ApiError::new(
        405,
        "method_not_allowed",
        format!("method not allowed here; allowed: {allow}"),
    )
    .to_response();
    r.headers.push(("Allow", allow.to_string()));
    Ok(r)
}

// === reading ===

fn status(shared: &Shared) -> Response {
    let planes = shared.planes();
    let st = shared.lock();
    let g = &st.current.meta;
    let kept: Vec<u64> = st.store.list().map(|m| m.generation).collect();
    let body = json!({
        "generation": g.generation,
        "created_at": g.created_at,
        "source": g.source,
        "comment": g.comment,
        "kept": {
            "count": kept.len(),
            "oldest": kept.first(),
            "newest": kept.last(),
        },
        "config_file": st.file,
        "planes": planes,
    });
    Response::json(200, &body)
}

fn get_config(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let g = shared.current();
    config_response(g.meta.generation, to_json(&g.config)?, wants_yaml(req))
}

/// The answer of `GET /v1/config` (and of one generation): secrets masked in both forms.
pub fn config_response(generation: u64, config: Value, yaml: bool) -> Result<Response, ApiError> {
    let config = masked(config);
    if yaml {
        return Ok(Response::text(200, "application/yaml", to_yaml(&config)?));
    }
    Ok(Response::json(
        200,
        &json!({ "generation": generation, "config": config }),
    ))
}

fn get_generation(shared: &Shared, req: &Request, n: &str) -> Result<Response, ApiError> {
    let n = parse_generation(n)?;
    let g = read_generation(shared, n)?;
    if wants_yaml(req) {
        return config_response(n, to_json(&g.config)?, true);
    }
    let mut body = serde_json::to_value(&g.meta).map_err(|e| ApiError::internal(e.to_string()))?;
    body["config"] = masked(to_json(&g.config)?);
    Ok(Response::json(200, &body))
}

fn generations(shared: &Shared) -> Response {
    let st = shared.lock();
    let list: Vec<_> = st.store.list().rev().collect();
    Response::json(200, &json!(list))
}

fn get_cluster(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let g = shared.current();
    let c = g
        .config
        .clusters
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no cluster named `{name}`")))?;
    object_response(g.meta.generation, to_json(c)?, wants_yaml(req))
}

fn get_route(
    shared: &Shared,
    req: &Request,
    listener: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let g = shared.current();
    let l = find_listener(&g.config, listener)?;
    let r = l.routes.iter().find(|r| r.name == name).ok_or_else(|| {
        ApiError::not_found(format!("no route named `{name}` on listener `{listener}`"))
    })?;
    object_response(g.meta.generation, to_json(r)?, wants_yaml(req))
}

fn object_response(generation: u64, v: Value, yaml: bool) -> Result<Response, ApiError> {
    let v = masked(v);
    if yaml {
        let text = serde_yaml_ng::to_string(&v).map_err(|e| ApiError::internal(e.to_string()))?;
        return Ok(Response::text(200, "application/yaml", text));
    }
    Ok(Response::json(
        200,
        &json!({ "generation": generation, "object": v }),
    ))
}

fn diff(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let (from, to) = {
        let st = shared.lock();
        let to = match req.query("to") {
            Some(t) => parse_generation(t)?,
            None => st.current.meta.generation,
        };
        let from = match req.query("from") {
            Some(f) => parse_generation(f)?,
            None => st.store.before(to).ok_or_else(|| {
                ApiError::not_found(format!("no kept generation before {to} to compare with"))
            })?,
        };
        (from, to)
    };
    let a = to_yaml(&masked(to_json(&read_generation(shared, from)?.config)?))?;
    let b = to_yaml(&masked(to_json(&read_generation(shared, to)?.config)?))?;
    let text = similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header(&format!("generation {from}"), &format!("generation {to}"))
        .to_string();
    Ok(Response::json(
        200,
        &json!({ "from": from, "to": to, "diff": text }),
    ))
}

fn planes(shared: &Shared) -> Response {
    Response::json(200, &json!(shared.planes()))
}

// === changing ===

fn validate(req: &Request) -> Response {
    match body_text(req).and_then(|t| parse_config(t, body_format(req))) {
        Ok(_) => Response::json(200, &json!({ "valid": true })),
        Err(e) if e.status == 422 => {
            let mut body = e.to_json();
            body["valid"] = json!(false);
            body["problems"] = json!(e.problems);
            Response::json(422, &body)
        }
        Err(e) => e.to_response(),
    }
}

fn put_config(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let config = parse_config(body_text(req)?, body_format(req))?;
    let commit = shared.commit(Source::Api, opts.comment.clone(), None, |cur| {
        checked(consumers::carry_managed_keys(config, cur))
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn put_cluster(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let cluster: Cluster = parse_object(body_text(req)?, body_format(req), name)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        match c.clusters.iter_mut().find(|c| c.name == name) {
            Some(slot) => *slot = cluster,
            None => c.clusters.push(cluster),
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn delete_cluster(shared: &Shared, req: &Request, name: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        let before = c.clusters.len();
        c.clusters.retain(|c| c.name != name);
        if c.clusters.len() == before {
            return Err(ApiError::not_found(format!("no cluster named `{name}`")));
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn put_route(
    shared: &Shared,
    req: &Request,
    listener: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let route: Route = parse_object(body_text(req)?, body_format(req), name)?;
    let before = req.query("before").map(str::to_string);
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        let l = find_listener_mut(&mut c, listener)?;
        if let Some(slot) = l.routes.iter_mut().find(|r| r.name == name) {
            *slot = route;
        } else if let Some(b) = &before {
            let at = l.routes.iter().position(|r| &r.name == b).ok_or_else(|| {
                ApiError::not_found(format!("?before: no route named `{b}` on `{listener}`"))
            })?;
            l.routes.insert(at, route);
        } else {
            l.routes.push(route);
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn delete_route(
    shared: &Shared,
    req: &Request,
    listener: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let commit = shared.commit(Source::Patch, opts.comment.clone(), None, |cur| {
        let mut c = cur.clone();
        let l = find_listener_mut(&mut c, listener)?;
        let before = l.routes.len();
        l.routes.retain(|r| r.name != name);
        if l.routes.len() == before {
            return Err(ApiError::not_found(format!(
                "no route named `{name}` on listener `{listener}`"
            )));
        }
        checked(c)
    })?;
    Ok(change_response(shared, commit, &opts))
}

fn rollback(shared: &Shared, req: &Request, n: &str) -> Result<Response, ApiError> {
    let opts = ChangeOpts::of(req)?;
    let n = parse_generation(n)?;
    let target = read_generation(shared, n)?;
    let comment = match &opts.comment {
        Some(c) => format!("rollback to {n}: {c}"),
        None => format!("rollback to {n}"),
    };
    // Checked again: a stored config passed the rules of its day, maybe not today's.
    let config = (*target.config).clone();
    let commit = shared.commit(Source::Rollback, Some(comment), None, |cur| {
        checked(consumers::carry_managed_keys(config, cur))
    })?;
    Ok(change_response(shared, commit, &opts))
}

/// `?wait=SECONDS` and `?comment=TEXT` of a change.
struct ChangeOpts {
    wait: Option<Duration>,
    comment: Option<String>,
}

impl ChangeOpts {
    fn of(req: &Request) -> Result<ChangeOpts, ApiError> {
        let wait = match req.query("wait") {
            None => None,
            Some(w) => {
                let secs: f64 = w
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("?wait=`{w}` is not a number of seconds"))
                    })?;
                Some(Duration::from_secs_f64(secs.min(MAX_WAIT_SECS)))
            }
        };
        let comment = req
            .query("comment")
            .map(|c| {
                c.chars()
                    .filter(|ch| !ch.is_control())
                    .take(MAX_COMMENT)
                    .collect::<String>()
            })
            .filter(|c| !c.is_empty());
        Ok(ChangeOpts { wait, comment })
    }
}

fn change_response(shared: &Shared, commit: Commit, opts: &ChangeOpts) -> Response {
    let n = commit.generation();
    let mut body = json!({
        "generation": n,
        "changed": matches!(commit, Commit::New(_)),
    });
    if let Some(wait) = opts.wait {
        body["planes"] = json!(shared.wait_for_planes(n, wait));
    }
    Response::json(200, &body)
}

// === bodies ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
    Unknown,
}

fn body_format(req: &Request) -> Format {
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.contains("json") {
        Format::Json
    } else if ct.contains("yaml") {
        Format::Yaml
    } else {
        Format::Unknown
    }
}

fn body_text(req: &Request) -> Result<&str, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the request has no body"));
    }
    std::str::from_utf8(&req.body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))
}

/// Checks JSON syntax when the body is (or claims to be) JSON, so that a JSON typo is reported as
/// one, with its line.
fn check_json_syntax(text: &str, format: Format) -> Result<(), ApiError> {
    let looks_json = text.trim_start().starts_with(['{', '[']);
    if format == Format::Json || (format == Format::Unknown && looks_json) {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            // An unlabelled body that is not JSON may still be YAML in flow style.
            if format == Format::Json {
                return Err(ApiError::invalid(vec![ApiProblem {
                    line: Some(e.line()),
                    field: String::new(),
                    message: format!("invalid JSON: {}", strip_location(&e.to_string())),
                }]));
            }
        }
    }
    Ok(())
}

/// A full config from a body, JSON or YAML, validated. JSON is YAML, so both go through
/// `weir_config::parse` and problems name the field and the line of the body.
fn parse_config(text: &str, format: Format) -> Result<Config, ApiError> {
    check_json_syntax(text, format)?;
    weir_config::parse(text, "<request>").map_err(ApiError::from)
}

/// One named object (a cluster, a route) from a body. Its `name` may be left out (the path gives
/// it) but must not differ from the path's.
fn parse_object<T: DeserializeOwned>(
    text: &str,
    format: Format,
    name: &str,
) -> Result<T, ApiError> {
    check_json_syntax(text, format)?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_problem)?;
    let serde_yaml_ng::Value::Mapping(mut map) = doc else {
        return Err(ApiError::invalid(vec![ApiProblem {
            line: Some(1),
            field: String::new(),
            message: "expected one object (a mapping)".into(),
        }]));
    };
    match map.get("name") {
        Some(serde_yaml_ng::Value::String(n)) if n == name => {
            // Deserialized from the text, so errors keep their lines.
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_yaml_ng::with::singleton_map_recursive::deserialize(de).map_err(yaml_problem)
        }
        Some(other) => Err(ApiError::invalid(vec![ApiProblem {
            line: None,
            field: "name".into(),
            message: format!(
                "the body names {} but the path names `{name}`",
                serde_yaml_ng::to_string(other)
                    .map(|s| format!("`{}`", s.trim()))
                    .unwrap_or_else(|_| "another object".into())
            ),
        }])),
        None => {
            map.insert("name".into(), name.into());
            serde_yaml_ng::with::singleton_map_recursive::deserialize(
                serde_yaml_ng::Value::Mapping(map),
            )
            .map_err(yaml_problem)
        }
    }
}

fn yaml_problem(e: serde_yaml_ng::Error) -> ApiError {
    let line = e.location().map(|l| l.line());
    let msg = e.to_string();
    let msg = strip_location(&msg);
    let (field, message) = match msg.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() && path != "." => {
            (path.to_string(), rest.to_string())
        }
        _ => (String::new(), msg.to_string()),
    };
    ApiError::invalid(vec![ApiProblem {
        line,
        field,
        message,
    }])
}

fn strip_location(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Validates a whole config made by a patch; problems name the object they are in.
pub(crate) fn checked(config: Config) -> Result<Config, ApiError> {
    match weir_config::validate(&config) {
        Ok(()) => Ok(config),
        Err(problems) => Err(ApiError::invalid(
            problems
                .into_iter()
                .map(|p| {
                    let mut p = ApiProblem::from(p);
                    if let Some(what) = describe(&config, &p.field) {
                        p.message = format!("{} ({what})", p.message);
                    }
                    p
                })
                .collect(),
        )),
    }
}

/// `listeners[0].routes[2].cluster` → ``route `chat` on listener `main` ``.
fn describe(config: &Config, field: &str) -> Option<String> {
    let index = |s: &str, prefix: &str| -> Option<usize> {
        s.strip_prefix(prefix)?.split(']').next()?.parse().ok()
    };
    if let Some(i) = index(field, "clusters[") {
        let c = config.clusters.get(i)?;
        return Some(format!("cluster `{}`", c.name));
    }
    let i = index(field, "listeners[")?;
    let l = config.listeners.get(i)?;
    let rest = field.split_once("].").map(|(_, r)| r).unwrap_or("");
    match index(rest, "routes[").and_then(|j| l.routes.get(j)) {
        Some(r) => Some(format!("route `{}` on listener `{}`", r.name, l.name)),
        None => Some(format!("listener `{}`", l.name)),
    }
}

// === helpers ===

/// A JSON document with every secret masked (`weir_protocol::mask_secrets`).
pub fn masked(mut v: Value) -> Value {
    weir_protocol::mask_secrets(&mut v);
    v
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(format!("cannot encode: {e}")))
}

/// YAML of a (masked) config document. When it still is a [`Config`], it is written through the
/// schema, so keys come in the schema's order (as in a hand-written `weir.yaml`) rather than
/// sorted, and enums look as the parser expects them.
pub fn to_yaml(doc: &Value) -> Result<String, ApiError> {
    let enc = |e: serde_yaml_ng::Error| ApiError::internal(format!("cannot encode YAML: {e}"));
    match serde_json::from_value::<Config>(doc.clone()) {
        Ok(c) => {
            let mut buf = Vec::new();
            let mut ser = serde_yaml_ng::Serializer::new(&mut buf);
            serde_yaml_ng::with::singleton_map_recursive::serialize(&c, &mut ser).map_err(enc)?;
            String::from_utf8(buf).map_err(|e| ApiError::internal(e.to_string()))
        }
        Err(_) => serde_yaml_ng::to_string(doc).map_err(enc),
    }
}

fn wants_yaml(req: &Request) -> bool {
    req.query("format")
        .is_some_and(|f| f.eq_ignore_ascii_case("yaml"))
        || req.header("accept").is_some_and(|a| a.contains("yaml"))
}

fn parse_generation(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("`{s}` is not a generation number")))
}

fn read_generation(shared: &Shared, n: u64) -> Result<Generation, ApiError> {
    let st = shared.lock();
    if st.current.meta.generation == n {
        return Ok((*st.current).clone());
    }
    st.store
        .read(n)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("generation {n} is not kept")))
}

fn find_listener<'a>(c: &'a Config, name: &str) -> Result<&'a weir_config::Listener, ApiError> {
    c.listeners
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no listener named `{name}`")))
}

fn find_listener_mut<'a>(
    c: &'a mut Config,
    name: &str,
) -> Result<&'a mut weir_config::Listener, ApiError> {
    c.listeners
        .iter_mut()
        .find(|l| l.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no listener named `{name}`")))
}

pub mod consumers;

#[cfg(test)]
mod tests;
