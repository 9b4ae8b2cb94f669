//! What `mcvpn admin` prints to an operator's terminal, through the real binary:
//! stored text with control characters (review C9) is shown escaped, never sent raw to
//! the terminal, and a reader that goes away (`| head -1`, `| grep -q`) ends the
//! command quietly instead of a panic.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn mcvpn(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcvpn"));
    cmd.arg("admin").arg("--db").arg(db).args(args);
    cmd.env_remove("MCVPN_LOG").env_remove("RUST_LOG");
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    let out = mcvpn(db, args).output().unwrap();
    assert!(
        out.status.success(),
        "mcvpn admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An outage note holding a screen clear, a C1 CSI, a carriage return and a new line
/// that would forge a table row: `outage list` prints them as visible escapes, and the
/// table keeps one line per row.
#[test]
fn control_characters_in_stored_text_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let note = "cut\x1b[2J\u{9b}31m\rforged\n9  2027-03-01  fake row";
    run(
        &db,
        &[
            "outage",
            "add",
            "--start",
            "2027-03-01T00:00:00",
            "--end",
            "2027-03-06T12:00:00",
            "--note",
            note,
        ],
    );
    let out = run(&db, &["outage", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    print!("{text}");
    let bad: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(
        bad.is_empty(),
        "raw control characters reach the terminal: {bad:?}\n{text:?}"
    );
    assert_eq!(text.lines().count(), 2, "a header and one row: {text:?}");
    assert!(
        text.contains(r"cut\x1b[2J\u{9b}31m\rforged\n9  2027-03-01  fake row"),
        "{text:?}"
    );
    // JSON keeps the stored text exactly (serde escapes it).
    let out = run(&db, &["--json", "outage", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["note"], note);
}

/// `mcvpn admin … | head -1` with the reader already gone: no panic, no "failed
/// printing to stdout", and no failure status of its own (a shell sees the usual
/// SIGPIPE end, like `yes | head -1`).
#[test]
fn a_closed_pipe_ends_printing_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    run(&db, &["tariff", "show"]);
    for json in [false, true] {
        let mut cmd = mcvpn(&db, &["tariff", "show"]);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // The reader leaves before the first byte is written.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "json={json}: {stderr}");
        assert!(stderr.is_empty(), "json={json}: nothing on stderr, got {stderr:?}");
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "json={json}: {status:?}"
        );
    }
}
