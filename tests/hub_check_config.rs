//! Issue 17, item 4: `mcvpn hub check-config`, run as the operator runs it (the built
//! binary), on a good settings file and on bad ones.

use std::process::Command;

fn check_config(file: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcvpn"));
    cmd.args(["hub", "check-config", "--config"]).arg(file);
    // The settings under test only: none from the developer's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("MCVPN_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line `check-config` prints for `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

#[test]
fn a_good_file_prints_each_setting_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:5000\"\n\
         db = \"/srv/hub.db\"\n\
         smtp = \"smtp://ops@mail.example.com:587\"\n\
         metrics-listen = \"127.0.0.1:9190\"\n",
    )
    .unwrap();
    let (code, out, err) = check_config(&file, &[("MCVPN_HUB_DB", "/from/env.db")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(line(&out, "listen").contains("127.0.0.1:5000") && line(&out, "listen").ends_with("(file)"));
    assert!(line(&out, "db").contains("/from/env.db") && line(&out, "db").ends_with("(env)"));
    assert!(line(&out, "overlay").ends_with("(default)"));
    assert!(line(&out, "metrics-listen").ends_with("(file)"));
    // The mail server's address (which may carry a user) is not printed.
    assert!(!out.contains("mail.example.com"), "{out}");
}

#[test]
fn a_bad_file_is_an_error_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:5000\"\nlisen = \"typo\"\n").unwrap();
    let (code, out, err) = check_config(&file, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("line 2") && err.contains("`lisen`"), "{err}");

    std::fs::write(&file, "metrics-listen = \"0.0.0.0:9190\"\n").unwrap();
    let (code, _, err) = check_config(&file, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("--metrics-listen-public"), "{err}");

    let (code, _, err) = check_config(&dir.path().join("missing.toml"), &[]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");
}
