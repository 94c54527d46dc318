use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::store::{now_rfc3339, Meta, Store};

const BASE: &str = "\
listeners:
  - name: main
    address: 127.0.0.1:8080
    routes:
      - name: api
        match:
          path: { prefix: /api }
        cluster: backend
      - name: fallback
        direct_response:
          status: 404
clusters:
  - name: backend
    endpoints: [\"127.0.0.1:9000\"]
";

fn shared() -> (tempfile::TempDir, Shared) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = Store::open(dir.path(), 5).expect("store");
    let g = Generation {
        meta: Meta {
            generation: 1,
            created_at: now_rfc3339(),
            source: Source::File,
            comment: None,
        },
        file_hash: None,
        config: Arc::new(weir_config::parse(BASE, "base").expect("base")),
    };
    store.write(&g).expect("write");
    (dir, Shared::new(store, g, None))
}

fn req(method: &str, target: &str, content_type: &str, body: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: crate::http::parse_query(query),
        headers: vec![("content-type".into(), content_type.into())],
        body: body.as_bytes().to_vec(),
        http10: false,
    }
}

#[test]
fn config_output_is_masked_in_json_and_yaml() {
    let doc = json!({
        "providers": [{ "name": "openai", "api_key": "sk-live-abcdefghijklmnop" }],
        "listeners": [],
    });
    for yaml in [false, true] {
        let r = config_response(3, doc.clone(), yaml).expect("response");
        let text = String::from_utf8(r.body).expect("utf8");
        assert!(!text.contains("sk-live-abcdefghijklmnop"), "{text}");
        assert!(text.contains("sk-l…mnop"), "{text}");
    }
}

#[test]
fn yaml_output_round_trips_in_schema_order() {
    let cfg = weir_config::parse(BASE, "base").expect("base");
    let yaml = to_yaml(&masked(to_json(&cfg).expect("json"))).expect("yaml");
    assert_eq!(weir_config::parse(&yaml, "out").expect("reparse"), cfg);
    // Schema order: `workers` (first field) before `listeners` before `clusters`.
    let (w, l, c) = (
        yaml.find("workers:").expect("workers"),
        yaml.find("listeners:").expect("listeners"),
        yaml.find("clusters:").expect("clusters"),
    );
    assert!(w < l && l < c, "{yaml}");
}

#[test]
fn json_and_yaml_bodies_report_field_and_line() {
    let (_d, s) = shared();
    let bad = BASE.replace("cluster: backend", "cluster: nowhere");
    let r = handle(&s, &req("POST", "/v1/validate", "application/yaml", &bad));
    assert_eq!(r.status, 422);
    let v = r.body_json();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["field"], "listeners[0].routes[0].cluster");
    assert_eq!(v["problems"][0]["line"], 8);

    let json_body = "{\n  \"listeners\": [\n    {\"name\": \"x\", \"address\": \"nope\"}\n  ]\n}";
    let r = handle(
        &s,
        &req("POST", "/v1/validate", "application/json", json_body),
    );
    assert_eq!(r.status, 422);
    let v = r.body_json();
    assert_eq!(v["problems"][0]["field"], "listeners[0].address");
    assert_eq!(v["problems"][0]["line"], 3);

    let r = handle(
        &s,
        &req(
            "PUT",
            "/v1/config",
            "application/json",
            "{\"listeners\": [}",
        ),
    );
    assert_eq!(r.status, 422);
    assert!(r.body_json()["error"]["problems"][0]["message"]
        .as_str()
        .expect("message")
        .contains("invalid JSON"));
    assert_eq!(s.current().meta.generation, 1);
}

#[test]
fn put_same_config_is_unchanged() {
    let (_d, s) = shared();
    let r = handle(&s, &req("PUT", "/v1/config", "", BASE));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_json(), json!({"generation": 1, "changed": false}));
}

#[test]
fn patches_validate_the_whole_config() {
    let (_d, s) = shared();
    // Deleting a cluster a route uses names the route.
    let r = handle(&s, &req("DELETE", "/v1/clusters/backend", "", ""));
    assert_eq!(r.status, 422);
    let msg = r.body_json()["error"]["problems"][0]["message"].clone();
    assert!(
        msg.as_str()
            .expect("msg")
            .contains("route `api` on listener `main`"),
        "{msg}"
    );

    // A new route without a name in its body, inserted before the catch-all.
    let body = "match:\n  path: { exact: /new }\ndirect_response:\n  status: 204\n";
    let r = handle(
        &s,
        &req(
            "PUT",
            "/v1/listeners/main/routes/new?before=fallback",
            "",
            body,
        ),
    );
    assert_eq!(r.status, 200, "{:?}", r.body_json());
    assert_eq!(r.body_json()["generation"], 2);
    let names: Vec<String> = s.current().config.listeners[0]
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["api", "new", "fallback"]);
    assert_eq!(s.current().meta.source, Source::Patch);

    // A body naming another route is refused.
    let r = handle(
        &s,
        &req(
            "PUT",
            "/v1/listeners/main/routes/x",
            "",
            "name: y\ncluster: backend\n",
        ),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.body_json()["error"]["problems"][0]["field"], "name");

    // A schema error in the body has its line.
    let r = handle(
        &s,
        &req(
            "PUT",
            "/v1/clusters/c2",
            "",
            "name: c2\nendpoints: [\"127.0.0.1:1\"]\nbogus: 1\n",
        ),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.body_json()["error"]["problems"][0]["line"], 3);

    let r = handle(&s, &req("DELETE", "/v1/listeners/main/routes/nope", "", ""));
    assert_eq!(r.status, 404);
    let r = handle(&s, &req("DELETE", "/v1/listeners/other/routes/api", "", ""));
    assert_eq!(r.status, 404);
}

#[test]
fn history_diff_and_rollback() {
    let (_d, s) = shared();
    let changed = BASE.replace("status: 404", "status: 410");
    let r = handle(
        &s,
        &req("PUT", "/v1/config?comment=gone%20now", "", &changed),
    );
    assert_eq!(r.body_json()["generation"], 2);

    let r = handle(&s, &req("GET", "/v1/diff", "", ""));
    let v = r.body_json();
    assert_eq!((v["from"].clone(), v["to"].clone()), (json!(1), json!(2)));
    let diff = v["diff"].as_str().expect("diff");
    let changed_lines: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("--- ")
                && !l.starts_with("+++ ")
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|l| if l.starts_with('-') { "-" } else { "+" })
        .collect();
    assert_eq!(changed_lines, ["-", "+"], "{diff}");
    assert!(
        diff.contains("status: 404") && diff.contains("status: 410"),
        "{diff}"
    );

    let r = handle(&s, &req("POST", "/v1/rollback/1", "", ""));
    assert_eq!(r.body_json()["generation"], 3);
    assert_eq!(s.current().meta.source, Source::Rollback);
    assert_eq!(s.current().meta.comment.as_deref(), Some("rollback to 1"));

    let r = handle(&s, &req("GET", "/v1/generations", "", ""));
    let list = r.body_json();
    assert_eq!(list[0]["generation"], 3);
    assert_eq!(list[1]["comment"], "gone now");
    assert_eq!(list[2]["source"], "file");

    assert_eq!(
        handle(&s, &req("POST", "/v1/rollback/99", "", "")).status,
        404
    );
    assert_eq!(
        handle(&s, &req("GET", "/v1/generations/2", "", "")).status,
        200
    );
    assert_eq!(handle(&s, &req("GET", "/v1/nothing", "", "")).status, 404);
    assert_eq!(handle(&s, &req("POST", "/v1/status", "", "")).status, 405);
    assert_eq!(
        handle(&s, &req("POST", "/v1/planes/attach", "", "")).status,
        426
    );
}
