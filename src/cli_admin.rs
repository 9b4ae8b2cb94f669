//! The `mcvpn admin` command line. The subcommands are the admin API's own types
//! ([`AdminCommand`] derives `clap::Subcommand`); all this file adds is the global
//! options, asking for passwords, and choosing between the local store and the hub.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use chrono::NaiveDate;
use clap::Args;

use crate::admin::{self, render, AdminCommand, ExecCtx, NewPassword};
use crate::exit::{self, Exit};
use crate::store::{self, SqliteStore, Store, StoreLocation};

#[derive(Args)]
#[command(after_help = "Operator, on the hub host (straight on the store):\n  \
    mcvpn admin contract add acme --kind corporation --accounts 10 --admin-name 'Sato' --admin-email it@acme.example\n  \
    mcvpn admin contract admin acme alice          # alice logs in as acme's account administrator\n  \
    mcvpn admin account add acme alice             # asks for alice's password\n  \
    mcvpn admin contract suspend acme --reason 'unpaid invoice'\n  \
    mcvpn admin invoice acme --at 2027-12-01\n\n\
    Account administrator, from anywhere (through the hub, own contract only):\n  \
    mcvpn admin --hub 'mcvpn://hub:51820/?key=…' --as alice account list\n  \
    mcvpn admin --hub … --as alice account add bob\n  \
    mcvpn admin --hub … --as alice target grant office-pc bob\n\n\
    Operator-side logins, from anywhere (added on the hub host with `mcvpn admin operator add NAME --role operator|monitor`):\n  \
    mcvpn admin --hub … --as ops1 --operator contract list\n  \
    mcvpn admin --hub … --as watch1 --operator outage list      # a monitor login: outages only")]
pub struct AdminArgs {
    /// The hub's store (operator mode): a SQLite file path, or postgres://USER@HOST:PORT/DB
    /// (also postgresql://) when hubs share a PostgreSQL database; a password in the URL
    /// is never printed (give it in MCVPN_HUB_DB, not on a command line `ps` shows). TLS as for `mcvpn hub --db`: verified
    /// (?sslrootcert=CA.pem, else web PKI roots) off loopback, ?sslmode=disable for plaintext
    #[arg(long, global = true, default_value = "/var/lib/mcvpn/hub.db", env = "MCVPN_HUB_DB",
          value_parser = crate::cli_hub::DbParser)]
    pub db: StoreLocation,
    /// Administer through this hub instead of the local store (account administrators)
    #[arg(long, global = true, requires = "as_account")]
    pub hub: Option<String>,
    /// The administrator account to log in as (with --hub)
    #[arg(long = "as", global = true, value_name = "ACCOUNT")]
    pub as_account: Option<String>,
    /// Log in with --as as an operator-side login (`mcvpn admin operator add`), not as a
    /// contract's administrator: operator rights, or outages only for a monitor login
    #[arg(long, global = true, requires = "hub")]
    pub operator: bool,
    /// Read the administrator's own password from this file (with --hub)
    #[arg(long, global = true)]
    pub admin_password_file: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// The operator's time zone: contract dates, "today" and the times shown are in it (use the hub's)
    #[arg(long, global = true, env = "MCVPN_TIMEZONE", default_value = crate::contract::DEFAULT_TZ, value_parser = crate::contract::parse_tz)]
    pub timezone: crate::contract::Tz,
    /// How to reach the hub (with --hub): auto, udp or https
    #[arg(long, global = true, env = "MCVPN_TRANSPORT", value_enum)]
    pub transport: Option<crate::node::TransportMode>,
    /// The HTTP proxy to reach the hub's HTTPS port through (with --hub):
    /// http://[USER@]HOST:PORT, or `none` (default: HTTPS_PROXY unless NO_PROXY names the hub)
    #[arg(long, global = true, value_name = "URL")]
    pub proxy: Option<String>,
    /// The proxy user's password: the first line of this file (else a prompt)
    #[arg(long, global = true, value_name = "FILE")]
    pub proxy_password_file: Option<PathBuf>,
    /// The operator's notice templates: a file here replaces the built-in one of the same
    /// name (see templates/notices/README.txt) [default: /etc/mcvpn/notices if it exists].
    /// Use the hub's
    #[arg(long, global = true, env = "MCVPN_NOTICE_TEMPLATES", value_name = "DIR")]
    pub notice_templates: Option<PathBuf>,
    /// `HTTPS_PROXY`/`NO_PROXY`, read by `main` (not flags).
    #[arg(skip)]
    pub proxy_env: (Option<String>, Option<String>),
    /// `LC_ALL`, `LC_MESSAGES`, `LANG`, read by `main` (`diagnose-report`'s language).
    #[arg(skip)]
    pub locale_env: [Option<String>; 3],
    #[command(subcommand)]
    pub what: AdminSubcommand,
}

/// `mcvpn admin` subcommands: the admin API's commands, and the two that work on the
/// store file itself (operator, on the hub host only: they read or write files there).
#[derive(clap::Subcommand)]
pub enum AdminSubcommand {
    #[command(flatten)]
    Api(AdminCommand),
    /// Copy the store to FILE while the hub runs (a consistent snapshot, mode 0600).
    /// Example: mcvpn admin backup /var/backups/mcvpn/hub-$(date +%F).db
    Backup {
        /// Where to write the copy (replaced atomically if it exists)
        file: PathBuf,
    },
    /// Show a user's `mcvpn diagnose --report` file (needs no hub or store).
    /// Example: mcvpn admin diagnose-report diagnose.json --lang ja
    DiagnoseReport {
        /// The report the user sent
        file: PathBuf,
        /// Language [default: from LC_ALL / LC_MESSAGES / LANG]
        #[arg(long, value_enum)]
        lang: Option<crate::node::diagnose::Lang>,
    },
    /// Replace the store with a backup made by `mcvpn admin backup`, after checking it.
    /// Stop the hub first. Example: systemctl stop mcvpn-hub && mcvpn admin restore FILE
    Restore {
        /// The backup to restore
        file: PathBuf,
    },
}

/// Asks for (or reads) the new password a command carries.
fn new_password(file: Option<&Path>, user: &str) -> Result<String> {
    let p = crate::password::read(file, &format!("New password for {user}: "))?;
    if file.is_none() {
        let again = crate::password::read(None, "Again: ")?;
        if again != p {
            anyhow::bail!("the two passwords differ");
        }
    }
    Ok(p)
}

/// Runs `command` as the operator straight on the store (`mcvpn admin --db`).
pub fn run_local(store: &mut dyn Store, command: AdminCommand, today: NaiveDate) -> admin::AdminResult {
    let ctx = ExecCtx::operator(today);
    let changes = command.changes_state();
    // Argon2 for a new password runs before the store is touched (as on the hub).
    let prepared = admin::prepare(command);
    let result = admin::execute(store, &ctx, &prepared);
    if result.is_ok() && changes {
        // What just took effect by date (a cancellation entered after its last day).
        admin::apply_due(store, crate::store::now(), today).ok();
    }
    result
}

/// The notice templates in `dir` (an error if it is missing), or in the default directory
/// if it exists, over the built-in ones. The hub and `mcvpn admin` both load them this way.
pub fn load_notice_templates(dir: Option<&Path>) -> Result<crate::admin::notice_text::NoticeTemplates> {
    use crate::admin::notice_text::{NoticeTemplates, DEFAULT_DIR};
    let templates = NoticeTemplates::load(dir.unwrap_or(Path::new(DEFAULT_DIR)), dir.is_some())?;
    for (name, origin) in templates.origins().filter(|(_, o)| !o.starts_with("built-in:")) {
        tracing::info!(template = name, file = %origin.display(), "notice template from the operator");
    }
    Ok(templates)
}

pub fn run(args: AdminArgs) -> Result<Exit> {
    if let AdminSubcommand::DiagnoseReport { file, lang } = &args.what {
        let lang = crate::cli_diagnose::language(*lang, &args.locale_env);
        return crate::cli_diagnose::show_report(file, lang, args.json);
    }
    crate::contract::set_operator_tz(args.timezone).map_err(|e| anyhow!(e))?;
    let today = crate::contract::today_in(args.timezone, chrono::Utc::now());
    let mut command = match args.what {
        AdminSubcommand::Api(command) => command,
        store_command if args.hub.is_some() => {
            let name = match store_command {
                AdminSubcommand::Backup { .. } => "backup",
                AdminSubcommand::Restore { .. } => "restore",
                AdminSubcommand::Api(_) | AdminSubcommand::DiagnoseReport { .. } => unreachable!("matched above"),
            };
            return Ok(Exit::fail(
                exit::USAGE,
                &format!("`admin {name}` works on the store file: run it on the hub host, without --hub"),
            ));
        }
        AdminSubcommand::Backup { file } => {
            return match args.db.sqlite_path() {
                Some(db) => backup(db, &file),
                None => Ok(not_a_sqlite_store("backup", &args.db)),
            }
        }
        AdminSubcommand::Restore { file } => {
            return match args.db.sqlite_path() {
                Some(db) => restore(db, &file),
                None => Ok(not_a_sqlite_store("restore", &args.db)),
            }
        }
        AdminSubcommand::DiagnoseReport { .. } => unreachable!("answered first"),
    };
    // Only the command line prompts; the hub and other callers get the password in the command.
    if let Some(slot) = command.new_password_mut() {
        *slot.password = NewPassword(new_password(slot.file, slot.user)?);
    }
    let result = match (&args.hub, &args.as_account) {
        (Some(hub), Some(account)) => {
            let password = crate::password::read(
                args.admin_password_file.as_deref(),
                &format!("Password for {account}: "),
            )?;
            let hub = crate::proto::url::HubUrl::parse(hub)?;
            let options = crate::node::settings::TransportOptions {
                transport: args.transport,
                proxy: args.proxy.clone(),
                proxy_password_file: args.proxy_password_file.clone(),
                https_proxy_env: args.proxy_env.0.clone(),
                no_proxy_env: args.proxy_env.1.clone(),
            };
            let reach = crate::node::remote::Reach {
                transport: options.resolve(&hub, None, None, None)?,
                hub,
            };
            if args.operator {
                crate::node::remote::operator_admin(&reach, account, &password, &command)?
            } else {
                crate::node::remote::admin(&reach, account, &password, &command)?
            }
        }
        (None, None) => {
            // The notices this command queues are worded here, as the hub would word them.
            crate::admin::notice_text::install(load_notice_templates(args.notice_templates.as_deref())?);
            if args.db.sqlite_path().is_some_and(|p| !p.exists()) {
                eprintln!("note: creating a new, empty store at {}", args.db);
            }
            let mut store = store::open(&args.db).map_err(|e| anyhow!("cannot open the store {}: {e}", args.db))?;
            run_local(&mut *store, command, today)
        }
        _ => return Ok(Exit::fail(exit::USAGE, "--as ACCOUNT goes with --hub URL")),
    };
    match result {
        Ok(output) => {
            render::print(&output, args.json);
            Ok(Exit::ok())
        }
        Err(admin::AdminError::Forbidden(m)) => Ok(Exit::fail(exit::REFUSED, &format!("not allowed: {m}"))),
        Err(e) => Ok(Exit::fail(exit::FAILURE, &e.to_string())),
    }
}

/// `admin backup` / `restore` on a PostgreSQL store: PostgreSQL's own tools do it.
fn not_a_sqlite_store(name: &str, db: &StoreLocation) -> Exit {
    Exit::fail(
        exit::USAGE,
        &format!(
            "`admin {name}` copies a SQLite store file, and the store is {db}: use pg_dump / pg_restore \
             (pg_dump -Fc -f hub.dump DBNAME, and pg_restore --clean -d DBNAME hub.dump with the hubs stopped)"
        ),
    )
}

/// `mcvpn admin backup FILE`: an online copy of the store (the hub may be writing).
fn backup(db: &Path, file: &Path) -> Result<Exit> {
    if !db.exists() {
        return Ok(Exit::fail(
            exit::FAILURE,
            &format!("no store at {} (see --db)", db.display()),
        ));
    }
    let store = SqliteStore::open(db).map_err(|e| anyhow!("cannot open the store {}: {e}", db.display()))?;
    match store.backup_to(file) {
        Ok(pages) => {
            println!(
                "backed up {} to {} ({pages} pages, integrity ok)",
                db.display(),
                file.display()
            );
            Ok(Exit::ok())
        }
        Err(e) => Ok(Exit::fail(
            exit::FAILURE,
            &format!("backup failed, nothing written: {e}"),
        )),
    }
}

/// `mcvpn admin restore FILE`: the store becomes the backup's content.
fn restore(db: &Path, file: &Path) -> Result<Exit> {
    match SqliteStore::restore_from(db, file) {
        Ok(()) => {
            println!(
                "restored {} from {}; start the hub again (sessions open at the backup are closed at its start)",
                db.display(),
                file.display()
            );
            Ok(Exit::ok())
        }
        Err(e) => Ok(Exit::fail(
            exit::FAILURE,
            &format!("restore failed, the store is unchanged: {e}"),
        )),
    }
}
