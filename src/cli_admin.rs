//! The `mcvpn admin` command line: clap definitions, and the translation of each
//! subcommand into an [`AdminCommand`] run locally or through the hub.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use chrono::{NaiveDate, NaiveDateTime};
use clap::{Args, Subcommand};

use crate::admin::{self, render, AdminCommand, ContractSpec, ExecCtx};
use crate::exit::{self, Exit};
use crate::store::{ContractField, SqliteStore};

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
    mcvpn admin --hub … --as alice target grant office-pc bob")]
pub struct AdminArgs {
    /// The hub's store (operator mode)
    #[arg(long, global = true, default_value = "/var/lib/mcvpn/hub.db", env = "MCVPN_HUB_DB")]
    pub db: PathBuf,
    /// Administer through this hub instead of the local store (account administrators)
    #[arg(long, global = true, requires = "as_account")]
    pub hub: Option<String>,
    /// The administrator account to log in as (with --hub)
    #[arg(long = "as", global = true, value_name = "ACCOUNT")]
    pub as_account: Option<String>,
    /// Read the administrator's own password from this file (with --hub)
    #[arg(long, global = true)]
    pub admin_password_file: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// The operator's time zone: contract dates, "today" and the times shown are in it (use the hub's)
    #[arg(long, global = true, env = "MCVPN_TIMEZONE", default_value = crate::contract::DEFAULT_TZ, value_parser = crate::contract::parse_tz)]
    pub timezone: crate::contract::Tz,
    #[command(subcommand)]
    pub what: AdminWhat,
}

#[derive(Subcommand)]
pub enum AdminWhat {
    /// Contracts (契約者): add, show, change, suspend, terminate, cancel (operator)
    #[command(subcommand)]
    Contract(ContractCmd),
    /// Accounts of a contract: add, list, lock, unlock, reset password, bind devices
    #[command(subcommand)]
    Account(AccountCmd),
    /// Targets: list, register by key, grant to other accounts of the contract
    #[command(subcommand)]
    Target(TargetCmd),
    /// Sessions (live, or all with --all)
    #[command(subcommand)]
    Session(SessionCmd),
    /// The audit log: logins, refusals, sessions, administrative changes. Example: mcvpn admin log --limit 50
    Log {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Notices to account administrators (suspension, termination, renewal, cancellation, locks)
    #[command(subcommand)]
    Notice(NoticeCmd),
    /// Invoices raised for a contract up to a date (operator). Example: mcvpn admin invoice acme --at 2027-12-01
    Invoice {
        contract: String,
        /// Date (YYYY-MM-DD); default today
        #[arg(long)]
        at: Option<NaiveDate>,
    },
    /// Outage compensation due to a contract from recorded outages (operator, art. 35)
    Compensation { contract: String },
    /// Recorded total outages (operator)
    #[command(subcommand)]
    Outage(OutageCmd),
    /// Fees and tax (operator)
    #[command(subcommand)]
    Tariff(TariffCmd),
}

#[derive(Subcommand)]
pub enum ContractCmd {
    /// Add a contract with its basic contract. Example: mcvpn admin contract add acme --accounts 10 --admin-email it@acme.example
    Add(ContractSpec),
    /// List contracts with state and accounts used. Example: mcvpn admin contract list
    List,
    /// Everything about one contract: terms, quota, history. Example: mcvpn admin contract show acme
    Show { name: String },
    /// Change name, address, phone, department, sales-agent, admin-name or admin-email (recorded). Example: mcvpn admin contract set acme address '1-1 Chiyoda'
    Set {
        name: String,
        #[arg(value_enum)]
        field: ContractField,
        value: String,
    },
    /// Name the account its administrator logs in with. Example: mcvpn admin contract admin acme alice
    Admin { name: String, account: String },
    /// Add an additional contract (more accounts). Example: mcvpn admin contract add-accounts acme 5
    AddAccounts {
        name: String,
        accounts: u32,
        #[arg(long)]
        start: Option<NaiveDate>,
    },
    /// Suspend (art. 23): cuts sessions at once, refuses logins, notifies. Example: mcvpn admin contract suspend acme --reason 'unpaid'
    Suspend {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Lift a suspension. Example: mcvpn admin contract resume acme
    Resume { name: String },
    /// Terminate (art. 24). Example: mcvpn admin contract terminate acme --reason 'breach of art. 22'
    Terminate {
        name: String,
        #[arg(long)]
        reason: String,
        /// The notice will not arrive: terminate five days after it is sent, or refused (art. 24-3)
        #[arg(long)]
        notice_undeliverable: bool,
    },
    /// Record a cancellation (art. 18). Example: mcvpn admin contract cancel acme --received 2027-10-15 --end 2027-12-31
    Cancel {
        name: String,
        /// Day the form arrived (default today in --timezone)
        #[arg(long)]
        received: Option<NaiveDate>,
        /// A month end the customer chose before the term end (art. 18-4); default: the term end (art. 18-1)
        #[arg(long)]
        end: Option<NaiveDate>,
    },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Add an account (asks for its password). Operator: mcvpn admin account add acme alice; administrator: … --as alice account add bob
    Add {
        /// The contract (operator); an administrator may leave it out
        #[arg(num_args = 1..=2, value_names = ["CONTRACT", "USER"], required = true)]
        names: Vec<String>,
        /// Read the new account's password from this file
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List accounts. Example: mcvpn admin account list --contract acme
    List {
        #[arg(long)]
        contract: Option<String>,
    },
    /// Lock an account at once (the administrator's own tool; art. 9-3 asks them to report misuse to the operator): its sessions are cut. Example: mcvpn admin account lock bob
    Lock { user: String },
    /// Unlock an account. Example: mcvpn admin account unlock bob
    Unlock { user: String },
    /// Set a new password for an account. Example: mcvpn admin account password bob
    Password {
        user: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Register a device key for an account (USB-key mode). Example: mcvpn admin account bind bob --key BASE64
    Bind {
        user: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Allow only registered devices (on) or any (off). Example: mcvpn admin account binding bob on
    Binding {
        user: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Subcommand)]
pub enum TargetCmd {
    /// List targets. Example: mcvpn admin target list
    List,
    /// Register a target by its public key (instead of `mcvpn target enroll`). Example: mcvpn admin target add alice --key BASE64 --name pc-2
    Add {
        account: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        name: String,
    },
    /// Let another account of the contract reach a target. Example: mcvpn admin target grant office-pc bob
    Grant { target: String, account: String },
    /// Take a grant back. Example: mcvpn admin target revoke office-pc bob
    Revoke { target: String, account: String },
    /// List grants. Example: mcvpn admin target grants
    Grants,
}

#[derive(Subcommand)]
pub enum SessionCmd {
    /// List live sessions (or all with --all). Example: mcvpn admin session list --all
    List {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub enum NoticeCmd {
    /// Notices not sent yet (all with --all). Example: mcvpn admin notice list --all
    List {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub enum OutageCmd {
    /// Record a total outage (local times in --timezone). Example: mcvpn admin outage add --start 2027-03-01T00:00:00 --end 2027-03-06T12:00:00
    Add {
        #[arg(long)]
        start: NaiveDateTime,
        #[arg(long)]
        end: NaiveDateTime,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List recorded outages. Example: mcvpn admin outage list
    List,
}

#[derive(Subcommand)]
pub enum TariffCmd {
    /// Show the fees. Example: mcvpn admin tariff show
    Show,
    /// Set fees in yen and the tax in basis points (1000 = 10 %). Example: mcvpn admin tariff set --annual-fee 12000
    Set {
        #[arg(long)]
        initial_fee: Option<u64>,
        #[arg(long)]
        annual_fee: Option<u64>,
        #[arg(long)]
        tax_rate_bp: Option<u32>,
    },
}

fn new_password(file: Option<&PathBuf>, user: &str) -> Result<String> {
    let p = crate::password::read(file.map(PathBuf::as_path), &format!("New password for {user}: "))?;
    if file.is_none() {
        let again = crate::password::read(None, "Again: ")?;
        if again != p {
            anyhow::bail!("the two passwords differ");
        }
    }
    Ok(p)
}

/// Turns the parsed command line into the command to run.
pub fn to_command(what: AdminWhat, today: NaiveDate) -> Result<AdminCommand> {
    Ok(match what {
        AdminWhat::Contract(c) => match c {
            ContractCmd::Add(spec) => AdminCommand::ContractAdd(spec),
            ContractCmd::List => AdminCommand::ContractList,
            ContractCmd::Show { name } => AdminCommand::ContractShow { name },
            ContractCmd::Set { name, field, value } => AdminCommand::ContractSet { name, field, value },
            ContractCmd::Admin { name, account } => AdminCommand::ContractAdmin { name, account },
            ContractCmd::AddAccounts { name, accounts, start } => {
                AdminCommand::ContractAddAccounts { name, accounts, start }
            }
            ContractCmd::Suspend { name, reason } => AdminCommand::ContractSuspend { name, reason },
            ContractCmd::Resume { name } => AdminCommand::ContractResume { name },
            ContractCmd::Terminate {
                name,
                reason,
                notice_undeliverable,
            } => AdminCommand::ContractTerminate {
                name,
                reason,
                notice_undeliverable,
            },
            ContractCmd::Cancel { name, received, end } => AdminCommand::ContractCancel { name, received, end },
        },
        AdminWhat::Account(a) => match a {
            AccountCmd::Add {
                mut names,
                password_file,
            } => {
                let user = names.pop().expect("clap requires one");
                let contract = names.pop();
                let password = new_password(password_file.as_ref(), &user)?;
                AdminCommand::AccountAdd {
                    contract,
                    user,
                    password,
                }
            }
            AccountCmd::List { contract } => AdminCommand::AccountList { contract },
            AccountCmd::Lock { user } => AdminCommand::AccountLock { user },
            AccountCmd::Unlock { user } => AdminCommand::AccountUnlock { user },
            AccountCmd::Password { user, password_file } => {
                let password = new_password(password_file.as_ref(), &user)?;
                AdminCommand::AccountPassword { user, password }
            }
            AccountCmd::Bind { user, key, name } => AdminCommand::AccountBind { user, key, name },
            AccountCmd::Binding { user, state } => AdminCommand::AccountBinding {
                user,
                on: state == "on",
            },
        },
        AdminWhat::Target(t) => match t {
            TargetCmd::List => AdminCommand::TargetList,
            TargetCmd::Add { account, key, name } => AdminCommand::TargetAdd { account, key, name },
            TargetCmd::Grant { target, account } => AdminCommand::TargetGrant { target, account },
            TargetCmd::Revoke { target, account } => AdminCommand::TargetRevoke { target, account },
            TargetCmd::Grants => AdminCommand::GrantList,
        },
        AdminWhat::Session(SessionCmd::List { all }) => AdminCommand::SessionList { all },
        AdminWhat::Log { limit } => AdminCommand::Log { limit },
        AdminWhat::Notice(NoticeCmd::List { all }) => AdminCommand::NoticeList { all },
        AdminWhat::Invoice { contract, at } => AdminCommand::Invoice {
            name: contract,
            at: at.unwrap_or(today),
        },
        AdminWhat::Compensation { contract } => AdminCommand::Compensation { name: contract },
        AdminWhat::Outage(OutageCmd::Add { start, end, note }) => AdminCommand::OutageAdd { start, end, note },
        AdminWhat::Outage(OutageCmd::List) => AdminCommand::OutageList,
        AdminWhat::Tariff(TariffCmd::Show) => AdminCommand::TariffShow,
        AdminWhat::Tariff(TariffCmd::Set {
            initial_fee,
            annual_fee,
            tax_rate_bp,
        }) => AdminCommand::TariffSet {
            initial_fee,
            annual_fee,
            tax_rate_bp,
        },
    })
}

pub fn run(args: AdminArgs) -> Result<Exit> {
    crate::contract::set_operator_tz(args.timezone).map_err(|e| anyhow!(e))?;
    let today = crate::contract::today_in(args.timezone, chrono::Utc::now());
    let command = to_command(args.what, today)?;
    let result = match (&args.hub, &args.as_account) {
        (Some(hub), Some(account)) => {
            let password = crate::password::read(
                args.admin_password_file.as_deref(),
                &format!("Password for {account}: "),
            )?;
            crate::node::remote::admin(hub, account, &password, &command)?
        }
        (None, None) => {
            if !args.db.exists() {
                eprintln!("note: creating a new, empty store at {}", args.db.display());
            }
            let mut store =
                SqliteStore::open(&args.db).map_err(|e| anyhow!("cannot open the store {}: {e}", args.db.display()))?;
            let ctx = ExecCtx::operator(today);
            let result = admin::execute(&mut store, &ctx, &command);
            if result.is_ok() && command.changes_state() {
                // What just took effect by date (a cancellation entered after its last day).
                admin::apply_due(&mut store, crate::store::now(), today).ok();
            }
            result
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
