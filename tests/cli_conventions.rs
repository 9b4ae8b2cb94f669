//! Issue 17's command-line conventions, through the real binary: `status` exits as the
//! LSB says (3 when nothing runs), `--json` documents carry `"version": 1`,
//! `--log-format json` writes one JSON object per log line, and the man pages and
//! completions come from the command line itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn mcvpn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcvpn"));
    for var in [
        "MCVPN_LOG",
        "RUST_LOG",
        "MCVPN_LOG_FORMAT",
        "MCVPN_RUN_DIR",
        "MCVPN_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

#[test]
fn status_when_nothing_runs_exits_3_with_a_versioned_document() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["status"][..], &["target", "status"][..]] {
        let out = mcvpn().args(args).arg("--run-dir").arg(dir.path()).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("not running"));
        let out = mcvpn()
            .args(args)
            .arg("--json")
            .arg("--run-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let doc = json(&out.stdout);
        assert_eq!(doc["version"], 1, "{doc}");
        assert_eq!(doc["running"], false, "{doc}");
    }
}

#[test]
fn hub_url_json_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let out = mcvpn()
        .args(["hub", "url", "--json", "--listen", "127.0.0.1:51820", "--key"])
        .arg(dir.path().join("hub.key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = json(&out.stdout);
    assert_eq!(doc["version"], 1, "{doc}");
    assert!(
        doc["url"]
            .as_str()
            .unwrap()
            .starts_with("mcvpn://127.0.0.1:51820/?key="),
        "{doc}"
    );
}

/// A hub's first log line with `--log-format json`: one object, the message and the
/// event's fields at the top level. The hub is stopped after it.
#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = mcvpn()
        .args([
            "--log-format",
            "json",
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--https-listen",
            "off",
            "--db",
        ])
        .arg(dir.path().join("hub.db"))
        .arg("--key")
        .arg(dir.path().join("hub.key"))
        .arg("--status-socket")
        .arg(dir.path().join("hub.sock"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hub.stderr.take().unwrap()).read_line(&mut line).unwrap();
    hub.kill().unwrap();
    hub.wait().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(doc["level"], "INFO", "{doc}");
    assert_eq!(doc["timezone"], "Asia/Tokyo", "{doc}");
    assert!(doc["message"].as_str().unwrap().contains("time zone"), "{doc}");
    assert!(doc["timestamp"].is_string(), "{doc}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let out = mcvpn().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let bash = String::from_utf8(out.stdout).unwrap();
    assert!(
        bash.contains("complete -F _mcvpn") && bash.contains("--persist"),
        "bash completion"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = mcvpn()
        .args(["debug", "gen-docs", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let man = dir.path().join("man1");
    for page in [
        "mcvpn.1",
        "mcvpn-up.1",
        "mcvpn-hub.1",
        "mcvpn-hub-stats.1",
        "mcvpn-target-run.1",
        "mcvpn-admin.1",
    ] {
        assert!(man.join(page).exists(), "{page} missing");
    }
    assert!(
        !man.join("mcvpn-client-daemon.1").exists(),
        "hidden commands get no page"
    );
    let up = std::fs::read_to_string(man.join("mcvpn-up.1")).unwrap();
    assert!(up.contains("persist"), "mcvpn-up.1 documents --persist");
    for file in ["mcvpn", "_mcvpn", "mcvpn.fish"] {
        assert!(dir.path().join("completions").join(file).exists(), "{file} missing");
    }
}

/// `mcvpn diagnose --json` is a versioned report; a bad URL fails with status 6 (the
/// diagnose statuses: 0 ok, 5 warnings, 6 failed); `admin diagnose-report` shows it back
/// and refuses a file that is not a report with status 1.
#[test]
fn diagnose_json_is_a_versioned_report_the_operator_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = mcvpn()
        .args([
            "diagnose",
            "--json",
            "--server",
            "https://not-mcvpn.example",
            "--report",
        ])
        .arg(&report)
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = json(&out.stdout);
    assert_eq!(doc["version"], 1, "{doc}");
    assert_eq!(doc["kind"], "mcvpn-diagnose-report", "{doc}");
    assert_eq!(doc["checks"][0]["verdict"], "fail", "{doc}");
    let shown = mcvpn()
        .args(["admin", "diagnose-report", "--lang", "en"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("[FAIL] server URL and key"));
    let not_a_report = dir.path().join("other.json");
    std::fs::write(&not_a_report, r#"{"version": 1, "running": false}"#).unwrap();
    let refused = mcvpn()
        .args(["admin", "diagnose-report"])
        .arg(&not_a_report)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not an mcvpn diagnose report"));
}
