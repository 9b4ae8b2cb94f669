//! The hub's settings file, `/etc/mcvpn/hub.toml`: flat TOML whose keys are the long
//! flag names of `mcvpn hub` (kebab-case, as typed on the command line).
//!
//! Precedence: flags > environment variables > the file > defaults. Rather than repeat
//! every flag in a serde struct (and its parser, and its default), the file's entries
//! become flags (`--key=value`) appended to the command line, but only for the settings
//! whose value clap took from a default; clap then parses the lot once more, with its own
//! value parsers and errors. A setting given by flag or environment is thus never
//! overridden by the file, and the file's values are checked exactly as flags are.

use std::collections::BTreeSet;
use std::ffi::OsString;

use anyhow::{anyhow, bail, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};

use super::HubArgs;

/// Where `mcvpn hub` looks for its file when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/mcvpn/hub.toml";

/// Parses the whole command line again with the given arguments appended; returns all
/// its matches (the CLI layer's parser, passed down so that this module reads no argv).
pub type Reparse<'a> = &'a dyn Fn(&[OsString]) -> Result<ArgMatches, clap::Error>;

/// Settings whose value says nothing that should not be on a screen.
const REDACTED: &[&str] = &["smtp"];

/// Keys the file may not set: the file's own path.
const NOT_IN_FILE: &[&str] = &["config"];

/// One setting as `check-config` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The long flag name (= the file's key).
    pub key: String,
    pub value: String,
    /// `flag`, `env`, `file`, `default`, or `unset`.
    pub source: &'static str,
}

/// The hub's arguments after merging the file in, and where each came from.
pub struct Resolved {
    pub args: HubArgs,
    pub origins: Vec<Origin>,
}

/// One entry of the file, as the flag(s) it stands for.
struct Entry {
    key: String,
    line: usize,
    value: toml::Value,
}

/// The flags of `mcvpn hub`: long name → (clap id, takes a value).
fn flags() -> Vec<(String, String, bool)> {
    let cmd = HubArgs::augment_args(clap::Command::new("hub"));
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            Some((long.to_string(), a.get_id().to_string(), a.get_action().takes_values()))
        })
        .collect()
}

/// The matches of the command holding the hub's flags (`hub`, or `hub check-config`).
fn hub_matches(m: &ArgMatches) -> &ArgMatches {
    let mut m = m;
    while let Some((name, sub)) = m.subcommand() {
        if name != "hub" && name != "check-config" {
            break;
        }
        m = sub;
    }
    m
}

/// Merges the settings file into the command line (see the module's comment).
pub fn resolve(reparse: Reparse) -> Result<Resolved> {
    let first = reparse(&[]).map_err(|e| anyhow!("{e}"))?;
    let first = hub_matches(&first);
    let path = first
        .get_one::<std::path::PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| DEFAULT_PATH.into());
    let explicit = first.value_source("config") != Some(ValueSource::DefaultValue);
    let entries = match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read the settings file {}", path.display())),
    };

    let flags = flags();
    let mut extra = Vec::new();
    let mut from_file = BTreeSet::new();
    for e in &entries {
        let Some((_, id, takes_value)) = flags.iter().find(|(long, ..)| *long == e.key) else {
            unreachable!("parse() checked the keys")
        };
        if !matches!(first.value_source(id), None | Some(ValueSource::DefaultValue)) {
            continue; // a flag or an environment variable set it: they win
        }
        let line = e.line;
        let flag = as_flags(&e.key, &e.value, *takes_value)
            .map_err(|why| anyhow!("{}:{line}: {}: {why}", path.display(), e.key))?;
        if !flag.is_empty() {
            from_file.insert(id.clone());
        }
        extra.extend(flag);
    }
    let merged = reparse(&extra).map_err(|e| anyhow!("{} (with the settings from {})", e, path.display()))?;
    let merged = hub_matches(&merged);
    let args = HubArgs::from_arg_matches(merged).map_err(|e| anyhow!("{e}"))?;

    let origins = flags
        .iter()
        .map(|(long, id, _)| {
            let source = if from_file.contains(id) {
                "file"
            } else {
                match merged.value_source(id) {
                    Some(ValueSource::CommandLine) => "flag",
                    Some(ValueSource::EnvVariable) => "env",
                    Some(ValueSource::DefaultValue) => "default",
                    _ => "unset",
                }
            };
            let value = match merged.get_raw(id) {
                Some(_) if REDACTED.contains(&long.as_str()) => "(set, not shown)".to_string(),
                // A PostgreSQL URL may hold a password: shown as HOST:PORT/DB.
                Some(mut v) if long == "db" => v
                    .next()
                    .map(|x| {
                        let raw = x.to_string_lossy();
                        crate::store::StoreLocation::parse(&raw)
                            .map(|l| l.to_string())
                            .unwrap_or_else(|_| "(not a valid store location)".into())
                    })
                    .unwrap_or_default(),
                Some(v) => v
                    .map(|x| x.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "-".to_string(),
            };
            Origin {
                key: long.clone(),
                value,
                source,
            }
        })
        .collect();
    Ok(Resolved { args, origins })
}

/// Parses the file: a flat table whose keys are `mcvpn hub`'s long flags.
fn parse(text: &str) -> Result<Vec<Entry>> {
    let table: std::collections::BTreeMap<toml::Spanned<String>, toml::Value> = toml::from_str(text)?;
    let flags = flags();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut entries = Vec::new();
    for (key, value) in table {
        let line = line_of(key.span().start);
        let name = key.into_inner();
        if NOT_IN_FILE.contains(&name.as_str()) || !flags.iter().any(|(long, ..)| *long == name) {
            bail!(
                "line {line}: unknown key `{name}`: the keys are the long flag names of `mcvpn hub --help` \
                 (listen, db, https-listen, metrics-listen…), without the dashes"
            );
        }
        entries.push(Entry { key: name, line, value });
    }
    Ok(entries)
}

/// The command-line form of one entry: `--key=value`, repeated for an array; a switch
/// (`metrics-listen-public = true`) is `--key` or nothing.
fn as_flags(key: &str, value: &toml::Value, takes_value: bool) -> Result<Vec<OsString>, String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(if *b { "on" } else { "off" }.to_string()),
            _ => Err("give a string, a number or true/false".to_string()),
        }
    };
    if !takes_value {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{key}").into()]),
            toml::Value::Boolean(false) => Ok(vec![]),
            _ => Err("give true or false".to_string()),
        };
    }
    let values = match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
        v => vec![scalar(v)?],
    };
    Ok(values.into_iter().map(|v| format!("--{key}={v}").into()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use std::path::Path;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        hub: HubArgs,
    }

    fn resolve_with(argv: &[&str]) -> Result<Resolved> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        resolve(&|extra: &[OsString]| {
            TestCli::command().try_get_matches_from(argv.iter().cloned().chain(extra.iter().cloned()))
        })
    }

    fn source<'a>(r: &'a Resolved, key: &str) -> (&'a str, &'static str) {
        let o = r.origins.iter().find(|o| o.key == key).unwrap();
        (&o.value, o.source)
    }

    /// One test for all four levels: the environment is the process's, shared by tests.
    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1111\"\n\
             db = \"/from/file.db\"\n\
             status-socket = \"/from/file.sock\"\n\
             extra-key = [\"/a.key\", \"/b.key\"]\n\
             metrics-listen = \"127.0.0.1:9190\"\n\
             metrics-listen-public = true\n\
             socket-buffer = 4096\n",
        )
        .unwrap();
        std::env::set_var("MCVPN_HUB_DB", "/from/env.db");
        let r = resolve_with(&["t", "--listen", "127.0.0.1:2222", "--config", file.to_str().unwrap()]);
        std::env::remove_var("MCVPN_HUB_DB");
        let r = r.unwrap();
        assert_eq!(source(&r, "listen"), ("127.0.0.1:2222", "flag"));
        assert_eq!(source(&r, "db"), ("/from/env.db", "env"));
        assert_eq!(source(&r, "status-socket"), ("/from/file.sock", "file"));
        assert_eq!(source(&r, "extra-key"), ("/a.key, /b.key", "file"));
        assert_eq!(source(&r, "socket-buffer"), ("4096", "file"));
        assert_eq!(source(&r, "metrics-listen-public"), ("true", "file"));
        assert_eq!(source(&r, "overlay"), ("100.64.0.0/10", "default"));
        assert_eq!(r.args.identity.listen.port(), 2222);
        assert_eq!(r.args.db.sqlite_path(), Some(Path::new("/from/env.db")));
        assert_eq!(r.args.status_socket, Path::new("/from/file.sock"));
        assert_eq!(r.args.socket_buffer, 4096);
        assert_eq!(r.args.metrics.metrics_listen.0, Some("127.0.0.1:9190".parse().unwrap()));
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let r = resolve_with(&["t", "--db", "postgres://hub:s3cret@db.example:5433/mcvpn"]).unwrap();
        let (value, from) = source(&r, "db");
        assert_eq!((value, from), ("PostgreSQL at db.example:5433/mcvpn", "flag"));
        assert!(!format!("{:?}", r.args.db).contains("s3cret"));
        assert!(r.args.db.sqlite_path().is_none());
    }

    /// A store URL that does not parse is refused without repeating it (clap's own
    /// message would show the password).
    #[test]
    fn a_bad_postgres_url_is_refused_without_its_password() {
        for url in [
            "postgres://hub:s3cret@db.example/mcvpn?sslmode=prefer",
            "postgres://hub:s3cret@db.example/mcvpn?sslrootcert=/nonexistent/ca.pem",
            "postgres://hub:s3cret@db.example:notaport/mcvpn",
        ] {
            let e = resolve_with(&["t", "--db", url]).err().unwrap();
            let text = format!("{e:#}");
            assert!(text.contains("--db") && !text.contains("s3cret"), "{text}");
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it_and_its_line() {
        let e = parse("listen = \"127.0.0.1:1\"\n\nlisten-adress = \"x\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 3") && e.contains("`listen-adress`"), "{e}");
        let e = parse("config = \"/other.toml\"\n").err().unwrap().to_string();
        assert!(e.contains("`config`"), "{e}");
    }

    #[test]
    fn a_bad_value_in_the_file_is_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hub.toml");
        std::fs::write(&file, "listen = \"not an address\"\n").unwrap();
        let e = resolve_with(&["t", "--config", file.to_str().unwrap()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--listen") && e.contains(file.to_str().unwrap()), "{e}");
    }

    #[test]
    fn a_missing_file_is_an_error_only_when_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let e = resolve_with(&["t", "--config", missing.to_str().unwrap()])
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("none.toml"), "{e:#}");
        // The default path does not exist on a build machine (if it does, it must be valid).
        if !Path::new(DEFAULT_PATH).exists() {
            let r = resolve_with(&["t"]).unwrap();
            assert_eq!(source(&r, "listen"), ("0.0.0.0:51820", "default"));
        }
    }

    #[test]
    fn the_example_file_is_valid_and_names_every_key() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/hub.toml.example");
        let text = std::fs::read_to_string(&example).unwrap();
        // Every key is there, commented out with its default.
        for (long, ..) in flags() {
            if NOT_IN_FILE.contains(&long.as_str()) {
                continue;
            }
            assert!(
                text.contains(&format!("# {long} = ")),
                "{long} is missing from {}",
                example.display()
            );
        }
        // Uncommented, it parses (the keys are all known).
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        parse(&uncommented).unwrap();
    }
}
