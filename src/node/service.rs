//! `mcvpn up --persist`: the client as a boot-time systemd service.
//!
//! The unit runs `mcvpn up --foreground --resume`: the hub and account come from the
//! config `up` remembered, the login from the resume credential `up --persist` saved
//! (root's only, mode 0600). The password is never written anywhere: when the credential
//! has lapsed (a week unused, see `hub::auth::RESUME_LIFETIME_S`) or the hub refuses it,
//! the service stops (no restart loop on a refusal) and the user runs
//! `sudo mcvpn up --persist` again. Logs go to the journal (stderr under systemd).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::client::ClientPaths;

pub const UNIT_NAME: &str = "mcvpn-client.service";

/// Where the unit goes and how to reach systemd; read by the command line only.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// `/etc/systemd/system` (the administrator's units), or a test's directory.
    pub unit_dir: PathBuf,
    /// The `mcvpn` executable the unit runs.
    pub exe: PathBuf,
    /// Whether this machine was booted with systemd (`/run/systemd/system` exists, as
    /// sd_booted(3) checks): only then are `systemctl` calls made.
    pub systemd_running: bool,
}

impl ServiceSettings {
    pub fn unit_path(&self) -> PathBuf {
        self.unit_dir.join(UNIT_NAME)
    }
}

/// What `install` or `remove` did, for the user.
#[derive(Debug)]
pub struct Outcome {
    pub unit: PathBuf,
    pub action: &'static str,
    /// `None` when systemctl was run and succeeded; otherwise what the user must do.
    pub note: Option<String>,
}

impl Outcome {
    pub fn describe(&self) -> String {
        match &self.note {
            None => format!("{} {}", self.action, self.unit.display()),
            Some(note) => format!("{} {}; {note}", self.action, self.unit.display()),
        }
    }
}

/// Quotes one ExecStart argument for systemd: in double quotes, with `\`, `"` and the
/// specifier character `%` escaped, so paths with spaces or `%` survive.
fn quote(arg: &Path) -> String {
    let s = arg.to_string_lossy();
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The unit file's text.
pub fn unit_text(exe: &Path, paths: &ClientPaths) -> String {
    let exec = [
        quote(exe),
        "up --foreground --resume".into(),
        format!("--config {}", quote(&paths.config)),
        format!("--key {}", quote(&paths.key)),
        format!("--run-dir {}", quote(&paths.run_dir)),
        format!("--resume-file {}", quote(&paths.resume)),
    ]
    .join(" ");
    format!(
        "# Written by `mcvpn up --persist`; `mcvpn down --persist` removes it.\n\
[Unit]\n\
Description=mcvpn client: reconnect this PC to its mcvpn hub at boot\n\
Documentation=man:mcvpn-up(1)\n\
After=network-online.target\n\
Wants=network-online.target\n\
\n\
[Service]\n\
Type=simple\n\
# Logs in with the saved resume credential (never a password); logs go to the journal.\n\
ExecStart={exec}\n\
Restart=on-failure\n\
RestartSec=5\n\
# 3: the hub refused (credential lapsed, account locked, contract suspended); 4: not\n\
# root. Retrying cannot help: run `sudo mcvpn up --persist` again.\n\
RestartPreventExitStatus=3 4\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n"
    )
}

fn systemctl(args: &[&str]) -> Result<()> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .with_context(|| format!("cannot run systemctl {}", args.join(" ")))?;
    if !status.success() {
        bail!("systemctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Writes the unit and, under a running systemd, enables it for the next boot (the
/// client `up` just started keeps running; it is not the unit's process).
pub fn install(settings: &ServiceSettings, paths: &ClientPaths) -> Result<Outcome> {
    let unit = settings.unit_path();
    crate::util::write_atomic(&unit, unit_text(&settings.exe, paths).as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", unit.display()))?;
    let note = if settings.systemd_running {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", UNIT_NAME])?;
        None
    } else {
        Some(format!(
            "systemd is not running on this machine, so it is not enabled: on a machine booted \
             with systemd, `sudo systemctl enable {UNIT_NAME}` starts it at boot"
        ))
    };
    Ok(Outcome {
        unit,
        action: "installed",
        note,
    })
}

/// Disables (under a running systemd) and deletes the unit; no unit is not an error.
pub fn remove(settings: &ServiceSettings) -> Result<Outcome> {
    let unit = settings.unit_path();
    let mut note = None;
    if settings.systemd_running && unit.exists() {
        systemctl(&["disable", UNIT_NAME])?;
    } else if !settings.systemd_running {
        note = Some("systemd is not running on this machine: nothing to disable".to_string());
    }
    let action = match std::fs::remove_file(&unit) {
        Ok(()) => "removed",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no service at",
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", unit.display())),
    };
    if settings.systemd_running {
        systemctl(&["daemon-reload"])?;
    }
    Ok(Outcome { unit, action, note })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> ClientPaths {
        ClientPaths {
            config: root.join("etc dir/mcvpn.toml"),
            run_dir: root.join("run"),
            key: root.join("100%/device.key"),
            log_dir: root.join("log"),
            resume: root.join("client.resume"),
        }
    }

    #[test]
    fn unit_runs_the_foreground_client_with_the_resume_credential_and_quoted_paths() {
        let root = Path::new("/x");
        let text = unit_text(Path::new("/usr/bin/mcvpn"), &paths(root));
        let exec = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert_eq!(
            exec,
            "ExecStart=\"/usr/bin/mcvpn\" up --foreground --resume --config \"/x/etc dir/mcvpn.toml\" \
             --key \"/x/100%%/device.key\" --run-dir \"/x/run\" --resume-file \"/x/client.resume\""
        );
        assert!(text.contains("RestartPreventExitStatus=3 4"), "{text}");
        assert!(text.contains("WantedBy=multi-user.target"), "{text}");
    }

    #[test]
    fn install_then_remove_without_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ServiceSettings {
            unit_dir: dir.path().join("units"),
            exe: "/usr/bin/mcvpn".into(),
            systemd_running: false,
        };
        let out = install(&settings, &paths(dir.path())).unwrap();
        assert!(out.describe().contains("systemd is not running"), "{}", out.describe());
        assert!(settings.unit_path().exists());
        assert_eq!(remove(&settings).unwrap().action, "removed");
        assert!(!settings.unit_path().exists());
        assert_eq!(remove(&settings).unwrap().action, "no service at");
    }
}
