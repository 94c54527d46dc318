//! The real `weir-control` binary, driven over its socket.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{variant, Daemon, FakePlane, BASE};
use serde_json::{json, Value};
use weir_protocol::PlaneMessage;

fn put(d: &Daemon, path: &str, body: &str) -> (u16, Value) {
    d.json("PUT", path, Some("application/yaml"), body)
}

#[test]
fn apply_and_invalid_config_keeps_the_running_generation() {
    let d = Daemon::start(Some(BASE), &[]);
    assert_eq!(d.generation(), 1);
    assert_eq!(d.get("/v1/status")["source"], "file");

    let (status, v) = put(&d, "/v1/config?comment=raise", &variant(410));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"generation": 2, "changed": true}));
    let cfg = d.get("/v1/config");
    assert_eq!(cfg["generation"], 2);
    assert_eq!(
        cfg["config"]["listeners"][0]["routes"][1]["direct_response"]["status"],
        410
    );

    // Invalid: an unknown cluster on line 8, and a bad address on line 3.
    let bad = variant(410)
        .replace("cluster: backend", "cluster: nowhere")
        .replace("127.0.0.1:8080", "not-an-address");
    let (status, v) = put(&d, "/v1/config", &bad);
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["type"], "invalid_config");
    let problems = v["error"]["problems"].as_array().expect("problems");
    assert!(problems
        .iter()
        .any(|p| p["field"] == "listeners[0].routes[0].cluster" && p["line"] == 8));
    assert!(problems
        .iter()
        .any(|p| p["field"] == "listeners[0].address" && p["line"] == 3));
    assert_eq!(d.generation(), 2);

    // The same config again makes no generation.
    let (_, v) = put(&d, "/v1/config", &variant(410));
    assert_eq!(v, json!({"generation": 2, "changed": false}));

    // JSON bodies work too.
    let mut doc = d.get("/v1/config")["config"].clone();
    doc["listeners"][0]["routes"][1]["direct_response"]["status"] = json!(411);
    let (status, v) = d.json(
        "PUT",
        "/v1/config",
        Some("application/json"),
        &doc.to_string(),
    );
    assert_eq!((status, v["generation"].clone()), (200, json!(3)), "{v}");

    // Validate never changes anything.
    let (status, v) = d.json("POST", "/v1/validate", None, &bad);
    assert_eq!((status, v["valid"].clone()), (422, json!(false)));
    let (status, v) = d.json("POST", "/v1/validate", None, BASE);
    assert_eq!((status, v), (200, json!({"valid": true})));
    assert_eq!(d.generation(), 3);
}

#[test]
fn file_watch_applies_valid_changes_and_reports_invalid_ones() {
    let d = Daemon::start(Some(BASE), &["--watch-interval", "50ms"]);
    // Like an editor: write a new file, rename it over the old one.
    let tmp = d.dir.path().join("weir.yaml.new");
    std::fs::write(&tmp, variant(418)).expect("write");
    std::fs::rename(&tmp, &d.config).expect("rename");
    d.until("generation 2 from the file", |d| d.generation() == 2);
    assert_eq!(d.get("/v1/status")["source"], "file");

    std::fs::write(
        &d.config,
        variant(418).replace("cluster: backend", "cluster: gone"),
    )
    .expect("write");
    d.until("the file error in status", |d| {
        !d.get("/v1/status")["config_file"]["error"].is_null()
    });
    let st = d.get("/v1/status");
    assert_eq!(st["generation"], 2);
    assert_eq!(
        st["config_file"]["problems"][0]["field"],
        "listeners[0].routes[0].cluster"
    );
    assert_eq!(st["config_file"]["problems"][0]["line"], 8);

    // Fixed again: the error clears and the change applies.
    std::fs::write(&d.config, variant(419)).expect("write");
    d.until("generation 3", |d| d.generation() == 3);
    assert!(d.get("/v1/status")["config_file"]["error"].is_null());
}

#[test]
fn sighup_rereads_the_file_now() {
    let d = Daemon::start(Some(BASE), &["--watch-interval", "1h"]);
    std::fs::write(&d.config, variant(420)).expect("write");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.generation(), 1);
    d.signal("HUP");
    d.until("generation 2 after SIGHUP", |d| d.generation() == 2);
}

#[test]
fn patches_are_validated_as_a_whole() {
    let d = Daemon::start(Some(BASE), &[]);
    let route = "name: chat\nmatch:\n  path: { prefix: /v1/chat }\ncluster: backend\n";
    let (status, v) = put(&d, "/v1/listeners/main/routes/chat?before=fallback", route);
    assert_eq!((status, v["generation"].clone()), (200, json!(2)), "{v}");
    let routes = d.get("/v1/config")["config"]["listeners"][0]["routes"].clone();
    let names: Vec<&str> = routes
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["api", "chat", "fallback"]);
    assert_eq!(d.get("/v1/status")["source"], "patch");

    // Upsert keeps the position.
    let (status, _) = put(&d, "/v1/listeners/main/routes/api", "cluster: backend\n");
    assert_eq!(status, 200);
    let (status, v) = d.json("GET", "/v1/listeners/main/routes/chat", None, "");
    assert_eq!(
        (status, v["object"]["cluster"].clone()),
        (200, json!("backend"))
    );

    // Deleting a cluster in use: 422 naming the routes, nothing changes.
    let g = d.generation();
    let (status, v) = d.json("DELETE", "/v1/clusters/backend", None, "");
    assert_eq!(status, 422, "{v}");
    let text = v["error"]["problems"].to_string();
    assert!(text.contains("route `api` on listener `main`"), "{text}");
    assert!(text.contains("route `chat` on listener `main`"), "{text}");
    assert_eq!(d.generation(), g);

    // A new cluster, then the route moved to it, then the old cluster deleted.
    let (status, _) = put(&d, "/v1/clusters/b2", "endpoints: [\"127.0.0.1:9001\"]\n");
    assert_eq!(status, 200);
    for r in ["api", "chat"] {
        let (status, _) = put(
            &d,
            &format!("/v1/listeners/main/routes/{r}"),
            "cluster: b2\n",
        );
        assert_eq!(status, 200);
    }
    let (status, v) = d.json("DELETE", "/v1/clusters/backend", None, "");
    assert_eq!(status, 200, "{v}");
    let (status, _) = d.json("DELETE", "/v1/listeners/main/routes/chat", None, "");
    assert_eq!(status, 200);
    assert_eq!(d.json("DELETE", "/v1/clusters/backend", None, "").0, 404);
}

#[test]
fn history_diff_and_rollback() {
    let d = Daemon::start(Some(BASE), &[]);
    put(&d, "/v1/config", &variant(410));
    put(&d, "/v1/config", &variant(411));
    let list = d.get("/v1/generations");
    let gens: Vec<u64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|g| g["generation"].as_u64().expect("n"))
        .collect();
    assert_eq!(gens, [3, 2, 1]);

    let v = d.get("/v1/diff");
    assert_eq!((v["from"].clone(), v["to"].clone()), (json!(2), json!(3)));
    let diff = v["diff"].as_str().expect("diff");
    assert!(diff.contains("--- generation 2") && diff.contains("+++ generation 3"));
    assert!(
        diff.contains("status: 410") && diff.contains("status: 411"),
        "{diff}"
    );
    let v = d.get("/v1/diff?from=1&to=3");
    assert!(v["diff"].as_str().expect("diff").contains("status: 404"));

    let (status, v) = d.json("POST", "/v1/rollback/1", None, "");
    assert_eq!((status, v["generation"].clone()), (200, json!(4)));
    let st = d.get("/v1/status");
    assert_eq!(
        (st["source"].clone(), st["comment"].clone()),
        (json!("rollback"), json!("rollback to 1"))
    );
    assert_eq!(
        d.get("/v1/generations/4")["config"],
        d.get("/v1/generations/1")["config"]
    );
    assert_eq!(d.json("POST", "/v1/rollback/77", None, "").0, 404);
}

#[test]
fn sigkill_right_after_an_apply_loses_nothing() {
    let mut d = Daemon::start(Some(BASE), &[]);
    let (status, v) = put(&d, "/v1/config", &variant(410));
    assert_eq!((status, v["generation"].clone()), (200, json!(2)));
    d.kill();
    let before = std::fs::read_dir(d.state.join("generations"))
        .expect("dir")
        .count();
    assert_eq!(before, 2);

    // Restarted with the same, unchanged --config: the API's change stays.
    d.spawn(true);
    let cfg = d.get("/v1/config");
    assert_eq!(cfg["generation"], 2);
    assert_eq!(
        cfg["config"]["listeners"][0]["routes"][1]["direct_response"]["status"],
        410
    );

    // Restarted without --config: the same.
    d.kill();
    d.spawn(false);
    assert_eq!(d.generation(), 2);

    // The file changed while the daemon was down: it becomes the next generation.
    d.kill();
    std::fs::write(&d.config, variant(499)).expect("write");
    d.spawn(true);
    let st = d.get("/v1/status");
    assert_eq!(
        (st["generation"].clone(), st["source"].clone()),
        (json!(3), json!("file"))
    );

    // An invalid file at start-up: the stored generation runs, the error is reported.
    d.kill();
    std::fs::write(&d.config, "listeners: 7\n").expect("write");
    d.spawn(true);
    let st = d.get("/v1/status");
    assert_eq!(st["generation"], 3);
    assert_eq!(st["config_file"]["problems"][0]["field"], "listeners");
}

#[test]
fn keep_prunes_old_generations() {
    let d = Daemon::start(Some(BASE), &["--keep", "3"]);
    for s in 410..415 {
        assert_eq!(put(&d, "/v1/config", &variant(s)).0, 200);
    }
    assert_eq!(d.generation(), 6);
    let mut files: Vec<String> = std::fs::read_dir(d.state.join("generations"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "000000000004.json",
            "000000000005.json",
            "000000000006.json"
        ]
    );
    assert_eq!(d.get("/v1/generations").as_array().expect("list").len(), 3);
    assert_eq!(d.json("POST", "/v1/rollback/2", None, "").0, 404);
    assert_eq!(d.json("GET", "/v1/generations/3", None, "").0, 404);
    assert_eq!(d.json("GET", "/v1/diff", None, "").0, 200);
}

#[test]
fn socket_is_private_and_owned_by_one_daemon() {
    let mut d = Daemon::start(Some(BASE), &[]);
    let mode = std::fs::metadata(&d.socket)
        .expect("stat")
        .permissions()
        .mode();
    // Only the owner may connect. (Tests usually run as root, which the kernel lets through any
    // file mode, so the refusal of another user is asserted through the mode bits.)
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let gens = std::fs::metadata(d.state.join("generations")).expect("stat");
    assert_eq!(gens.permissions().mode() & 0o777, 0o700);
    let file = d.state.join("generations/000000000001.json");
    assert_eq!(
        std::fs::metadata(file).expect("stat").permissions().mode() & 0o777,
        0o600
    );

    // A second daemon on the same socket refuses to start.
    let out = d.command(true).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));

    // After SIGKILL the stale socket is replaced.
    d.kill();
    assert!(d.socket.exists());
    d.spawn(true);
    assert_eq!(d.generation(), 1);

    // SIGTERM: socket removed, exit 0.
    d.signal("TERM");
    let st = d.child.take().expect("child").wait().expect("wait");
    assert!(st.success(), "{st}");
    assert!(!d.socket.exists());
}

#[test]
fn no_config_and_no_state_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir-control"))
        .arg("--socket")
        .arg(dir.path().join("s"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no --config given"));

    // An invalid file and no state: the problems, with file and line.
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, BASE.replace("cluster: backend", "cluster: nope")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir-control"))
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(dir.path().join("s"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:8: field `listeners[0].routes[0].cluster`"),
        "{err}"
    );
}

#[test]
fn http_details() {
    let d = Daemon::start(Some(BASE), &[]);
    // Keep-alive: two requests, one connection.
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/planes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");

    // Too large a body is refused before it is sent.
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.write_all(b"PUT /v1/config HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let (status, body) = common::parse_response(&raw);
    assert_eq!(status, 413);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "payload_too_large");

    assert_eq!(d.json("GET", "/v1/nope", None, "").0, 404);
    assert_eq!(d.json("DELETE", "/v1/config", None, "").0, 405);
    assert_eq!(d.json("POST", "/v1/planes/attach", None, "").0, 426);
    let (status, v) = d.json("PUT", "/v1/config?wait=soon", None, BASE);
    assert_eq!(
        (status, v["error"]["type"].clone()),
        (400, json!("bad_request"))
    );
    let (status, body) = common::request(&d.socket, "GET", "/v1/config?format=yaml", None, b"");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("utf8");
    assert_eq!(
        weir_config::parse(&text, "out").expect("yaml output parses"),
        weir_config::parse(BASE, "base").expect("base")
    );
}

#[test]
fn planes_ack_and_nack() {
    let d = Daemon::start(Some(BASE), &[]);
    let mut plane = FakePlane::attach(&d.socket, "plane-a", 0);
    let (g, cfg) = plane.next_snapshot();
    assert_eq!(g, 1);
    assert_eq!(cfg, weir_config::parse(BASE, "base").expect("base"));
    plane.send(&PlaneMessage::Ack { generation: 1 });
    d.until("the ack of generation 1", |d| {
        d.get("/v1/planes")[0]["generation"] == 1
    });
    let p = d.get("/v1/planes")[0].clone();
    assert_eq!(p["plane_id"], "plane-a");
    assert_eq!(p["pid"], 4242);
    assert_eq!(p["connected"], true);
    assert_eq!(p["last_result"], "ack");
    assert_eq!(p["last_generation_sent"], 1);

    // A second plane already on generation 1 gets no snapshot for it, and counts as on it.
    let plane_b = FakePlane::attach(&d.socket, "plane-b", 1);
    let _b = plane_b.answer_in_background(|_| None);
    let _a = plane.answer_in_background(|g| (g == 3).then(|| "core 1: bad regex".to_string()));

    let (status, v) = put(&d, "/v1/config?wait=5", &variant(410));
    assert_eq!(status, 200, "{v}");
    let mut planes = v["planes"].as_array().expect("planes").clone();
    planes.sort_by_key(|p| p["plane_id"].as_str().unwrap_or("").to_string());
    assert_eq!(
        Value::Array(planes),
        json!([
            {"plane_id": "plane-a", "result": "ack", "reason": null},
            {"plane_id": "plane-b", "result": "ack", "reason": null},
        ])
    );

    let (_, v) = put(&d, "/v1/config?wait=5", &variant(411));
    let a = v["planes"]
        .as_array()
        .expect("planes")
        .iter()
        .find(|p| p["plane_id"] == "plane-a")
        .expect("plane-a")
        .clone();
    assert_eq!(
        a,
        json!({"plane_id": "plane-a", "result": "nack", "reason": "core 1: bad regex"})
    );
    let planes = d.get("/v1/planes");
    let a = planes
        .as_array()
        .expect("planes")
        .iter()
        .find(|p| p["plane_id"] == "plane-a")
        .expect("plane-a");
    assert_eq!(a["last_result"], "nack");
    assert_eq!(a["last_reason"], "core 1: bad regex");
    assert_eq!(a["generation"], 2);
    assert_eq!(a["last_generation_sent"], 3);
    let st = d.get("/v1/status");
    assert_eq!(st["planes"].as_array().expect("planes").len(), 2);
}

#[test]
fn silent_planes_are_dropped_and_stay_listed() {
    let d = Daemon::start(
        Some(BASE),
        &["--ping-interval", "50ms", "--ping-timeout", "300ms"],
    );
    // Attached on the current generation, never answers a ping.
    let silent = FakePlane::attach(&d.socket, "silent", 1);
    d.until("the silent plane dropped", |d| {
        d.get("/v1/planes")[0]["connected"] == false
    });
    let p = d.get("/v1/planes")[0].clone();
    assert!(p["disconnect_reason"]
        .as_str()
        .expect("reason")
        .contains("no answer"));
    drop(silent);

    // One that answers pings stays.
    let alive = FakePlane::attach(&d.socket, "alive", 1);
    let _t = alive.answer_in_background(|_| None);
    std::thread::sleep(Duration::from_millis(800));
    let planes = d.get("/v1/planes");
    assert_eq!(planes[0]["plane_id"], "alive");
    assert_eq!(planes[0]["connected"], true);
    assert_eq!(planes[1]["plane_id"], "silent");
}
