//! The unit files in `systemd/` pass `systemd-analyze verify` without a word: copied to a temp
//! dir with `/usr/bin/weir` and `/usr/bin/weir-control` pointing at the built binaries (verify
//! checks that `ExecStart=` is executable), both units verify with exit 0 and print nothing
//! (warnings come with exit 0, so the output must be empty too). Skipped, with a note, where
//! `systemd-analyze` is not installed.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use weir_tests::*;

/// `systemd-analyze` on `PATH`, if any.
fn systemd_analyze() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("systemd-analyze"))
            .find(|p| p.is_file())
    })
}

fn verify(tool: &Path, units: &[&Path]) -> Output {
    run_bounded(
        Command::new(tool).arg("verify").args(units),
        Duration::from_secs(60),
    )
}

fn combined(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(tool) = systemd_analyze() else {
        eprintln!(
            "note: skipping units_pass_systemd_analyze_verify: systemd-analyze is not on PATH"
        );
        return;
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let weir = bin_path("weir");
    let control = bin_path("weir-control");
    let dir = TempDir::new("systemd");
    let mut units = Vec::new();
    for name in ["weir.service", "weir-control.service"] {
        let text = std::fs::read_to_string(src.join(name)).unwrap();
        // `weir-control` first: `/usr/bin/weir` is a prefix of it.
        let text = text
            .replace("/usr/bin/weir-control", &control.display().to_string())
            .replace("/usr/bin/weir", &weir.display().to_string());
        assert!(!text.contains("/usr/bin/weir"), "{name}: {text}");
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }

    // First, that verify really checks something here: a unit whose binary is missing fails.
    let bogus = dir.path().join("weir-bogus.service");
    let text = std::fs::read_to_string(&units[1]).unwrap();
    std::fs::write(
        &bogus,
        text.replace(&control.display().to_string(), "/nonexistent/weir-control"),
    )
    .unwrap();
    let out = verify(&tool, &[&bogus]);
    assert!(
        !out.status.success() || !combined(&out).is_empty(),
        "systemd-analyze verify did not notice a missing binary; it checks nothing here"
    );

    let refs: Vec<&Path> = units.iter().map(PathBuf::as_path).collect();
    let out = verify(&tool, &refs);
    assert!(
        out.status.success() && combined(&out).is_empty(),
        "systemd-analyze verify weir.service weir-control.service: exit {:?}, output:\n{}",
        out.status.code(),
        combined(&out)
    );
}

/// The notify protocol as `Type=notify` and `WatchdogSec=` use it: with `NOTIFY_SOCKET` set,
/// `weir` sends `READY=1` only once it serves (its listener already answers when the datagram
/// arrives), then `WATCHDOG=1` at half of `WATCHDOG_USEC` while its workers turn, and
/// `STOPPING=1` when it drains.
#[test]
fn notify_ready_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut gw = Gateway::new()
        .driver(Driver::Epoll)
        .route("{ name: r, direct_response: { status: 200, body: up } }")
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .start();
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline && !got.iter().any(|m: &String| m == "WATCHDOG=1") {
        let n = sock.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg == "READY=1" {
            // READY comes after the listeners serve.
            assert_eq!(gw.get("/").text(), "up");
        }
        got.push(msg);
    }
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    assert!(
        got.iter().any(|m| m == "WATCHDOG=1"),
        "no watchdog ping: {got:?}"
    );
    assert!(gw.stop_graceful(Duration::from_secs(20)).success());
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if &buf[..n] == b"STOPPING=1" {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
}
