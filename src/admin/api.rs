//! The typed admin API: every administrative command, who may run it, and what it answers.
//!
//! One set of types for three callers: the `mcvpn admin` command line (the enums derive
//! `clap::Subcommand`, so the CLI parses straight into them), the hub's control channel
//! (they derive `serde`, and travel inside `Request::Admin` / `Event::AdminResult`), and
//! the web console to come, which will send the same JSON. Answers ([`Output`]) are data,
//! not text: `render.rs` turns them into the tables people read and the versioned JSON
//! scripts read.
//!
//! Adding a command means adding a variant here; [`authorize`], [`AdminCommand::name`]
//! and [`AdminCommand::changes_state`] are exhaustive matches, so the build fails until
//! someone has decided who may run it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{ContractKind, DunningRule, InvoiceState, Tariff, Yen};
use crate::proto::control::{Key32, Role};
use crate::store::{AccountState, ContractField, ContractState, OperatorRole, TermKind};

/// The version of the JSON documents `mcvpn admin --json` prints. Raise it when a field
/// changes meaning or disappears; adding a field does not need a new version.
pub const JSON_VERSION: u32 = 1;

/// Who the command runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The service operator on the hub host: everything.
    Operator,
    /// An account administrator: their own contract only.
    Contract { id: i64, name: String },
    /// A `monitor` operator login (`mcvpn monitor`): records and lists outages, nothing else.
    Monitor { name: String },
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// An administrative action, as the command line parses it and the hub receives it.
///
/// JSON: `{"contract": {"show": {"name": "acme"}}}`, `{"contract": "list"}`,
/// `{"log": {"limit": 50}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum AdminCommand {
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
    /// Client devices of accounts: list, remove (each account may have its contract's device limit of them)
    #[command(subcommand)]
    Device(DeviceCmd),
    /// The audit log: logins, refusals, sessions, administrative changes. Example: mcvpn admin log --limit 50
    Log {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        #[serde(default)]
        filter: LogFilter,
    },
    /// Notices to account administrators (suspension, termination, renewal, cancellation, locks)
    #[command(subcommand)]
    Notice(NoticeCmd),
    /// Invoices raised for a contract up to a date (operator). Example: mcvpn admin invoice acme --at 2027-12-01
    ///
    /// With --csv: the stored invoices with their state, as CSV (UTF-8 with BOM, for Excel). With --print N: stored invoice N as a printable qualified invoice (適格請求書). Examples: mcvpn admin invoice acme --csv > acme.csv; mcvpn admin invoice acme --print 3
    Invoice {
        contract: String,
        /// Date (YYYY-MM-DD); default today
        #[arg(long)]
        at: Option<NaiveDate>,
        /// The stored invoices, their payments and states as CSV (UTF-8 with BOM)
        #[arg(long, conflicts_with = "print")]
        #[serde(default)]
        csv: bool,
        /// Stored invoice number N as a printable qualified invoice (適格請求書)
        #[arg(long, value_name = "N")]
        #[serde(default)]
        print: Option<i64>,
    },
    /// Payments against a contract's invoices, and their states (operator, art. 26-31)
    #[command(subcommand)]
    Payment(PaymentCmd),
    /// When invoices fall due and how unpaid ones are pursued: reminder, suspension (operator, art. 23, 28)
    #[command(subcommand)]
    Dunning(DunningCmd),
    /// The invoice issuer's name and registration number for qualified invoices (operator)
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Outage compensation due to a contract from recorded outages, less planned maintenance (operator, art. 35). Example: mcvpn admin compensation acme --statement
    Compensation {
        contract: String,
        /// Print the statement for the contract's administrator (Japanese, then English)
        #[arg(long)]
        statement: bool,
        /// Queue the statement as a notice to the contract's administrator
        #[arg(long, conflicts_with = "statement")]
        send: bool,
    },
    /// Recorded total outages (operator; `record` and `list` also for monitor logins)
    #[command(subcommand)]
    Outage(OutageCmd),
    /// Planned maintenance windows, announced to every administrator in advance (operator, art. 34-2)
    #[command(subcommand)]
    Maintenance(MaintenanceCmd),
    /// Operator-side logins over the admin channel, apart from contract accounts:
    /// `operator` (operator rights) or `monitor` (outages only, for `mcvpn monitor`)
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Fees and tax (operator)
    #[command(subcommand)]
    Tariff(TariffCmd),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum ContractCmd {
    /// Add a contract with its basic contract. Example: mcvpn admin contract add acme --accounts 10 --admin-email it@acme.example
    Add(ContractSpec),
    /// List contracts with state and accounts used. Example: mcvpn admin contract list
    List,
    /// Everything about one contract: terms, quota, history. Example: mcvpn admin contract show acme
    Show { name: String },
    /// Change name, address, phone, department, sales-agent, admin-name, admin-email or device-limit (recorded). Example: mcvpn admin contract set acme device-limit 20
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

/// A new contract with its basic contract, as `contract add` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct ContractSpec {
    /// The contract's name (a company or public body)
    pub name: String,
    /// corporation or public-body (art. 11: nothing else)
    #[arg(long, default_value = "corporation")]
    pub kind: String,
    /// Accounts in the basic contract (at least the hub's --min-accounts)
    #[arg(long, default_value_t = 10)]
    pub accounts: u32,
    /// Service start date (YYYY-MM-DD); default today
    #[arg(long)]
    pub start: Option<NaiveDate>,
    #[arg(long, default_value = "")]
    pub admin_name: String,
    #[arg(long, default_value = "")]
    pub admin_email: String,
    #[arg(long, default_value = "")]
    pub address: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    #[arg(long, default_value = "")]
    pub department: String,
    #[arg(long)]
    pub sales_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum AccountCmd {
    /// Add an account (asks for its password). Operator: mcvpn admin account add acme alice; administrator: … --as alice account add bob
    Add(NewAccount),
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
        // Where the command line reads the new password from; never sent.
        #[arg(long)]
        #[serde(skip)]
        password_file: Option<PathBuf>,
        /// Filled in by the caller: the command line asks for it or reads --password-file
        #[arg(skip)]
        password: NewPassword,
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
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Turn on the caller's own console second factor with a secret the console generated
    /// and a code that proves the authenticator app has it (the console's TOTP page).
    #[command(hide = true)]
    TotpOn {
        #[arg(skip)]
        secret: TotpSecret,
        #[arg(skip)]
        code: String,
    },
    /// Turn off your own console second factor (TOTP), with a current code from your authenticator app. Example: mcvpn admin --as alice account totp-off 123456
    TotpOff { code: String },
    /// Turn off an administrator's console second factor (TOTP), e.g. after a lost phone; they can set it up again after logging in with the password. Operator only. Example: mcvpn admin account totp-reset alice
    TotpReset { user: String },
}

/// A TOTP secret in base32 on its way from the console's setup page to the store. Never
/// printed (`Debug` hides it).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TotpSecret(pub String);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

/// `account add`: the account, its contract, and its first password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct NewAccount {
    #[command(flatten)]
    #[serde(flatten)]
    pub name: AccountName,
    /// Read the new account's password from this file
    #[arg(long)]
    #[serde(skip)]
    pub password_file: Option<PathBuf>,
    /// Filled in by the caller: the command line asks for it or reads --password-file
    #[arg(skip)]
    pub password: NewPassword,
}

/// `[CONTRACT] USER`: the operator names the contract, an account administrator may
/// leave it out (their own). Clap does not allow an optional positional before a
/// required one, so the pair is parsed by hand from one positional of 1 or 2 values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountName {
    pub contract: Option<String>,
    pub user: String,
}

const ACCOUNT_NAMES: &str = "names";

impl clap::FromArgMatches for AccountName {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut names: Vec<String> = m
            .get_many::<String>(ACCOUNT_NAMES)
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        let user = names.pop().ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "name the new account: account add [CONTRACT] USER\n",
            )
        })?;
        Ok(AccountName {
            contract: names.pop(),
            user,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for AccountName {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new(ACCOUNT_NAMES)
                .num_args(1..=2)
                .value_names(["CONTRACT", "USER"])
                .required(true)
                .value_parser(clap::value_parser!(String))
                .help("The contract (operator); an administrator may leave it out"),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// A new account password in clear, as the caller typed it. It travels only inside the
/// encrypted control channel, is never printed (`Debug` hides it), and is hashed by
/// `admin::prepare` before the store is locked.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NewPassword(pub String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum TargetCmd {
    /// List targets. Example: mcvpn admin target list
    List,
    /// Register a target by its public key; it can run once the machine has enrolled with an account of the contract. Example: mcvpn admin target add alice --key BASE64 --name pc-2
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum SessionCmd {
    /// List live sessions (or all with --all). Example: mcvpn admin session list --all
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a live session at once (the node is told and does not reconnect by itself). Example: mcvpn admin session end 42
    End { session: i64 },
}

/// `admin log`'s filters: which rows of the audit log to show (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct LogFilter {
    /// Only rows about this account
    #[arg(long)]
    #[serde(default)]
    pub account: Option<String>,
    /// Only refusals and denials (refused), or only the rest (ok)
    #[arg(long, value_enum)]
    #[serde(default)]
    pub result: Option<LogResult>,
    /// From this day (YYYY-MM-DD, in the operator's time zone)
    #[arg(long)]
    #[serde(default)]
    pub since: Option<NaiveDate>,
    /// Up to and including this day (YYYY-MM-DD, in the operator's time zone)
    #[arg(long)]
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

/// A log row's outcome: a refusal or denial, or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogResult {
    Ok,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum DeviceCmd {
    /// List client devices (of one account with --account). Example: mcvpn admin device list --account alice
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Remove a client device, by name or node number: its live session ends, its key no longer logs in, and the account may register another. Example: mcvpn admin device remove alice old-laptop
    Remove { user: String, device: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCmd {
    /// Notices not sent yet (all with --all). Example: mcvpn admin notice list --all
    List {
        #[arg(long)]
        all: bool,
    },
    /// Every notice worded by the templates in force, with sample values: check an edited
    /// template before a real notice uses it (operator). Example: mcvpn admin notice preview
    Preview,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
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
    /// Record an outage a monitor observed, times in UTC (RFC 3339); the same source and
    /// start again only extends its end (safe to retry). Monitor and operator logins.
    /// Example: mcvpn admin --hub URL --as watch1 --operator outage record --start 2027-03-01T00:00:00Z --end 2027-03-01T00:05:00Z
    Record {
        #[arg(long)]
        start: DateTime<Utc>,
        #[arg(long)]
        end: DateTime<Utc>,
        /// Who observed it (operator only; a monitor login records as `monitor:NAME`)
        #[arg(long)]
        #[serde(default)]
        source: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum OperatorCmd {
    /// Add an operator-side login (asks for its password). Example: mcvpn admin operator add watch1 --role monitor
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "operator")]
        role: OperatorRole,
        /// Read the new login's password from this file
        #[arg(long)]
        #[serde(skip)]
        password_file: Option<PathBuf>,
        /// Filled in by the caller: the command line asks for it or reads --password-file
        #[arg(skip)]
        password: NewPassword,
    },
    /// List operator-side logins. Example: mcvpn admin operator list
    List,
    /// Remove an operator-side login. Example: mcvpn admin operator remove watch1
    Remove { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceCmd {
    /// Announce a window (local times in --timezone). The notice goes to every contract's administrator --notice-days ahead, a reminder the day before. Example: mcvpn admin maintenance add --start 2027-03-20T02:00:00 --end 2027-03-20T05:00:00 --reason "ハブの更新 / hub upgrade"
    Add {
        #[arg(long)]
        start: NaiveDateTime,
        #[arg(long)]
        end: NaiveDateTime,
        /// What is done, as the administrators read it (Japanese first is best)
        #[arg(long)]
        reason: String,
        /// An emergency (art. 34-2): announce it at once and say so
        #[arg(long)]
        emergency: bool,
        /// How many days ahead the notice goes out
        #[arg(long, default_value_t = 7)]
        notice_days: u32,
    },
    /// List windows with their state. Example: mcvpn admin maintenance list
    List,
    /// Cancel a window not yet ended; administrators already told get a cancellation notice. Example: mcvpn admin maintenance cancel 3
    Cancel { id: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
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
    /// Option work fees (art. 27-1), invoiced with the initial fee, and the BCP special terms (start month charged). Example: mcvpn admin tariff options --option 'setup visit=50000' --bcp off
    Options {
        /// NAME=YEN; repeat for several. Replaces the options set before
        #[arg(long = "option", value_name = "NAME=YEN")]
        options: Vec<String>,
        /// Remove every option fee
        #[arg(long, conflicts_with = "options")]
        clear: bool,
        /// The BCP special terms: the usage fee accrues from the start month (on), or the start month is free (off, art. 27-2)
        #[arg(long, value_enum)]
        bcp: Option<OnOff>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum PaymentCmd {
    /// Record a payment received: against invoice N, or the oldest unpaid invoices first. A late payment raises its late interest (art. 31); paying every overdue invoice lifts a suspension for non-payment. Example: mcvpn admin payment add acme --amount 165000 --date 2027-01-20 --invoice 1
    Add {
        contract: String,
        /// Yen received
        #[arg(long)]
        amount: u64,
        /// The day it was received (YYYY-MM-DD); default today
        #[arg(long)]
        date: Option<NaiveDate>,
        /// The invoice number it pays (see `payment list`)
        #[arg(long, value_name = "N")]
        invoice: Option<i64>,
    },
    /// A contract's invoices with due dates, payments and states (open, paid, overdue). Example: mcvpn admin payment list acme
    List { contract: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum DunningCmd {
    /// Show the rule. Example: mcvpn admin dunning show
    Show,
    /// Change it: due date at the end of the month --due-months after issue, a reminder at --reminder-days overdue, suspension at --suspend-days overdue (0: never automatically). Example: mcvpn admin dunning set --reminder-days 7 --suspend-days 30
    Set {
        #[arg(long)]
        due_months: Option<u32>,
        #[arg(long)]
        reminder_days: Option<u32>,
        #[arg(long)]
        suspend_days: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "snake_case")]
pub enum IssuerCmd {
    /// Show the issuer. Example: mcvpn admin issuer show
    Show,
    /// Set the issuer's name and its registration number (登録番号, T + 13 digits). Example: mcvpn admin issuer set --name 'Example KK' --registration-number T1234567890123
    Set {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        registration_number: Option<String>,
    },
}

/// Where a caller fills in a command's new password (see [`AdminCommand::new_password_mut`]).
pub struct PasswordSlot<'a> {
    /// The account the password is for (the policy rejects passwords containing it).
    pub user: &'a str,
    /// `--password-file`, if the command line was given one.
    pub file: Option<&'a Path>,
    pub password: &'a mut NewPassword,
}

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// The service operator only: contracts and money.
    Operator,
    /// Also a contract's account administrator, within that contract (each command
    /// then checks that what it names is in the caller's contract).
    ContractAdmin,
    /// Also a monitor login (outages only).
    Monitor,
}

/// Decides whether `scope` may run `cmd` at all. Exhaustive on purpose, without a
/// wildcard arm: a new command does not compile until it is placed here.
pub fn authorize(scope: &Scope, cmd: &AdminCommand) -> Result<(), AdminError> {
    use AdminCommand as C;
    let allowed = match cmd {
        C::Contract(c) => match c {
            // Looking at their own contract (the command checks it is theirs).
            ContractCmd::Show { .. } => Allowed::ContractAdmin,
            ContractCmd::Add(..)
            | ContractCmd::List
            | ContractCmd::Set { .. }
            | ContractCmd::Admin { .. }
            | ContractCmd::AddAccounts { .. }
            | ContractCmd::Suspend { .. }
            | ContractCmd::Resume { .. }
            | ContractCmd::Terminate { .. }
            | ContractCmd::Cancel { .. } => Allowed::Operator,
        },
        C::Account(a) => match a {
            AccountCmd::Add(..)
            | AccountCmd::List { .. }
            | AccountCmd::Lock { .. }
            | AccountCmd::Unlock { .. }
            | AccountCmd::Password { .. }
            | AccountCmd::Bind { .. }
            | AccountCmd::Binding { .. } => Allowed::ContractAdmin,
            // Their own second factor (the command finds the caller's own account).
            AccountCmd::TotpOn { .. } | AccountCmd::TotpOff { .. } => Allowed::ContractAdmin,
            // For a lost phone: someone other than the phone's owner vouches for them.
            AccountCmd::TotpReset { .. } => Allowed::Operator,
        },
        C::Target(t) => match t {
            TargetCmd::List
            | TargetCmd::Add { .. }
            | TargetCmd::Grant { .. }
            | TargetCmd::Revoke { .. }
            | TargetCmd::Grants => Allowed::ContractAdmin,
        },
        C::Session(SessionCmd::List { .. } | SessionCmd::End { .. })
        | C::Log { .. }
        | C::Notice(NoticeCmd::List { .. }) => Allowed::ContractAdmin,
        C::Notice(NoticeCmd::Preview) => Allowed::Operator,
        // The account administrator manages their users' devices (the command checks the
        // account is in their contract); the operator everywhere.
        C::Device(d) => match d {
            DeviceCmd::List { .. } | DeviceCmd::Remove { .. } => Allowed::ContractAdmin,
        },
        C::Invoice { .. } | C::Compensation { .. } => Allowed::Operator,
        C::Outage(o) => match o {
            OutageCmd::Add { .. } => Allowed::Operator,
            OutageCmd::Record { .. } | OutageCmd::List => Allowed::Monitor,
        },
        C::Operator(o) => match o {
            OperatorCmd::Add { .. } | OperatorCmd::List | OperatorCmd::Remove { .. } => Allowed::Operator,
        },
        C::Maintenance(m) => match m {
            MaintenanceCmd::Add { .. } | MaintenanceCmd::List | MaintenanceCmd::Cancel { .. } => Allowed::Operator,
        },
        C::Tariff(t) => match t {
            TariffCmd::Show | TariffCmd::Set { .. } | TariffCmd::Options { .. } => Allowed::Operator,
        },
        // Money: the operator only.
        C::Payment(p) => match p {
            PaymentCmd::Add { .. } | PaymentCmd::List { .. } => Allowed::Operator,
        },
        C::Dunning(d) => match d {
            DunningCmd::Show | DunningCmd::Set { .. } => Allowed::Operator,
        },
        C::Issuer(i) => match i {
            IssuerCmd::Show | IssuerCmd::Set { .. } => Allowed::Operator,
        },
    };
    let forbidden = || AdminError::Forbidden(format!("`{}` is for the service operator only", cmd.name()));
    match (scope, allowed) {
        (Scope::Operator, _) => Ok(()),
        (Scope::Contract { .. }, Allowed::ContractAdmin) => Ok(()),
        (Scope::Contract { .. }, Allowed::Operator | Allowed::Monitor) => Err(forbidden()),
        (Scope::Monitor { .. }, Allowed::Monitor) => Ok(()),
        (Scope::Monitor { .. }, Allowed::Operator | Allowed::ContractAdmin) => Err(AdminError::Forbidden(format!(
            "`{}` is not for a monitor login (it may only record and list outages)",
            cmd.name()
        ))),
    }
}

impl AdminCommand {
    /// A short name for logs and refusals (as the audit log has always shown them).
    pub fn name(&self) -> &'static str {
        use AdminCommand as C;
        match self {
            C::Contract(c) => match c {
                ContractCmd::Add(..) => "contract-add",
                ContractCmd::List => "contract-list",
                ContractCmd::Show { .. } => "contract-show",
                ContractCmd::Set { .. } => "contract-set",
                ContractCmd::Admin { .. } => "contract-admin",
                ContractCmd::AddAccounts { .. } => "contract-add-accounts",
                ContractCmd::Suspend { .. } => "contract-suspend",
                ContractCmd::Resume { .. } => "contract-resume",
                ContractCmd::Terminate { .. } => "contract-terminate",
                ContractCmd::Cancel { .. } => "contract-cancel",
            },
            C::Account(a) => match a {
                AccountCmd::Add(..) => "account-add",
                AccountCmd::List { .. } => "account-list",
                AccountCmd::Lock { .. } => "account-lock",
                AccountCmd::Unlock { .. } => "account-unlock",
                AccountCmd::Password { .. } => "account-password",
                AccountCmd::Bind { .. } => "account-bind",
                AccountCmd::Binding { .. } => "account-binding",
                AccountCmd::TotpOn { .. } => "account-totp-on",
                AccountCmd::TotpOff { .. } => "account-totp-off",
                AccountCmd::TotpReset { .. } => "account-totp-reset",
            },
            C::Target(t) => match t {
                TargetCmd::List => "target-list",
                TargetCmd::Add { .. } => "target-add",
                TargetCmd::Grant { .. } => "target-grant",
                TargetCmd::Revoke { .. } => "target-revoke",
                TargetCmd::Grants => "grant-list",
            },
            C::Session(SessionCmd::List { .. }) => "session-list",
            C::Session(SessionCmd::End { .. }) => "session-end",
            C::Device(d) => match d {
                DeviceCmd::List { .. } => "device-list",
                DeviceCmd::Remove { .. } => "device-remove",
            },
            C::Log { .. } => "log",
            C::Notice(NoticeCmd::List { .. }) => "notice-list",
            C::Notice(NoticeCmd::Preview) => "notice-preview",
            C::Invoice { .. } => "invoice",
            C::Compensation { .. } => "compensation",
            C::Outage(o) => match o {
                OutageCmd::Add { .. } => "outage-add",
                OutageCmd::List => "outage-list",
                OutageCmd::Record { .. } => "outage-record",
            },
            C::Operator(o) => match o {
                OperatorCmd::Add { .. } => "operator-add",
                OperatorCmd::List => "operator-list",
                OperatorCmd::Remove { .. } => "operator-remove",
            },
            C::Maintenance(m) => match m {
                MaintenanceCmd::Add { .. } => "maintenance-add",
                MaintenanceCmd::List => "maintenance-list",
                MaintenanceCmd::Cancel { .. } => "maintenance-cancel",
            },
            C::Tariff(t) => match t {
                TariffCmd::Show => "tariff-show",
                TariffCmd::Set { .. } => "tariff-set",
                TariffCmd::Options { .. } => "tariff-options",
            },
            C::Payment(p) => match p {
                PaymentCmd::Add { .. } => "payment-add",
                PaymentCmd::List { .. } => "payment-list",
            },
            C::Dunning(d) => match d {
                DunningCmd::Show => "dunning-show",
                DunningCmd::Set { .. } => "dunning-set",
            },
            C::Issuer(i) => match i {
                IssuerCmd::Show => "issuer-show",
                IssuerCmd::Set { .. } => "issuer-set",
            },
        }
    }

    /// Whether it changes the store (the hub re-reads live sessions after those).
    /// The live session this command ends, for the hub to cut once it succeeded.
    pub fn ended_session(&self) -> Option<i64> {
        match self {
            AdminCommand::Session(SessionCmd::End { session }) => Some(*session),
            _ => None,
        }
    }

    pub fn changes_state(&self) -> bool {
        use AdminCommand as C;
        match self {
            C::Contract(c) => match c {
                ContractCmd::List | ContractCmd::Show { .. } => false,
                ContractCmd::Add(..)
                | ContractCmd::Set { .. }
                | ContractCmd::Admin { .. }
                | ContractCmd::AddAccounts { .. }
                | ContractCmd::Suspend { .. }
                | ContractCmd::Resume { .. }
                | ContractCmd::Terminate { .. }
                | ContractCmd::Cancel { .. } => true,
            },
            C::Account(a) => match a {
                AccountCmd::List { .. } => false,
                AccountCmd::Add(..)
                | AccountCmd::Lock { .. }
                | AccountCmd::Unlock { .. }
                | AccountCmd::Password { .. }
                | AccountCmd::Bind { .. }
                | AccountCmd::Binding { .. }
                | AccountCmd::TotpOn { .. }
                | AccountCmd::TotpOff { .. }
                | AccountCmd::TotpReset { .. } => true,
            },
            C::Target(t) => match t {
                TargetCmd::List | TargetCmd::Grants => false,
                TargetCmd::Add { .. } | TargetCmd::Grant { .. } | TargetCmd::Revoke { .. } => true,
            },
            C::Device(d) => match d {
                DeviceCmd::List { .. } => false,
                DeviceCmd::Remove { .. } => true,
            },
            // The session's end is the hub's to apply (it holds the live sessions).
            C::Session(SessionCmd::End { .. }) => true,
            C::Session(SessionCmd::List { .. })
            | C::Log { .. }
            | C::Notice(NoticeCmd::List { .. })
            | C::Notice(NoticeCmd::Preview)
            | C::Invoice { .. }
            | C::Compensation { .. } => false,
            C::Outage(o) => match o {
                OutageCmd::Add { .. } | OutageCmd::Record { .. } => true,
                OutageCmd::List => false,
            },
            // Notices are queued by the contract job that follows a change.
            C::Maintenance(m) => match m {
                MaintenanceCmd::Add { .. } | MaintenanceCmd::Cancel { .. } => true,
                MaintenanceCmd::List => false,
            },
            // Operator logins are read at each admin login: no live session to refresh.
            C::Operator(o) => match o {
                OperatorCmd::Add { .. } | OperatorCmd::Remove { .. } => true,
                OperatorCmd::List => false,
            },
            C::Tariff(t) => match t {
                TariffCmd::Show => false,
                TariffCmd::Set { .. } | TariffCmd::Options { .. } => true,
            },
            // A payment may lift a suspension: the hub re-reads its sessions after it.
            C::Payment(p) => match p {
                PaymentCmd::Add { .. } => true,
                PaymentCmd::List { .. } => false,
            },
            C::Dunning(d) => match d {
                DunningCmd::Show => false,
                DunningCmd::Set { .. } => true,
            },
            C::Issuer(i) => match i {
                IssuerCmd::Show => false,
                IssuerCmd::Set { .. } => true,
            },
        }
    }

    /// The new password this command carries, if any, for the caller to fill in.
    pub fn new_password_mut(&mut self) -> Option<PasswordSlot<'_>> {
        match self {
            AdminCommand::Account(AccountCmd::Add(NewAccount {
                name,
                password_file,
                password,
            })) => Some(PasswordSlot {
                user: &name.user,
                file: password_file.as_deref(),
                password,
            }),
            AdminCommand::Account(AccountCmd::Password {
                user,
                password_file,
                password,
            }) => Some(PasswordSlot {
                user,
                file: password_file.as_deref(),
                password,
            }),
            AdminCommand::Operator(OperatorCmd::Add {
                name,
                password_file,
                password,
                ..
            }) => Some(PasswordSlot {
                user: name,
                file: password_file.as_deref(),
                password,
            }),
            _ => None,
        }
    }

    /// The account and new password to hash before the command runs, if any.
    pub fn new_password(&self) -> Option<(&str, &NewPassword)> {
        match self {
            AdminCommand::Account(AccountCmd::Add(a)) => Some((&a.name.user, &a.password)),
            AdminCommand::Account(AccountCmd::Password { user, password, .. }) => Some((user, password)),
            AdminCommand::Operator(OperatorCmd::Add { name, password, .. }) => Some((name, password)),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "message", rename_all = "snake_case")]
pub enum AdminError {
    /// Outside the caller's contract, or operator-only.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Against the rules (quota, bad dates...).
    #[error("{0}")]
    Refused(String),
    /// A new password the policy does not accept (art. 10); the message says why.
    #[error("{0}")]
    PasswordPolicy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AdminResult = Result<Output, AdminError>;

// ---------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------

/// What a command answers: one typed document per kind of command. Listings, reports and
/// changes whose outcome is computed (dates, quotas) answer with data; other changes
/// answer with a sentence for people ([`Output::Message`]), and a caller that wants the
/// new state reads it back. A new variant here is a new kind of answer, not a breaking
/// change for callers that match the ones they know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Output {
    /// A change done; the sentence says what it did.
    Message(String),
    ContractAdded(ContractAdded),
    AccountsAdded(AccountsAdded),
    CancellationAccepted(CancellationAccepted),
    AccountAdded(AccountAdded),
    Contracts(Vec<ContractSummary>),
    Contract(Box<ContractDetails>),
    Accounts(Vec<AccountRow>),
    Targets(Vec<TargetRow>),
    Grants(Vec<GrantRow>),
    Sessions(Vec<SessionRow>),
    Devices(Vec<DeviceRow>),
    Log(Vec<AuditRow>),
    Notices(Vec<NoticeRow>),
    Invoices(InvoiceReport),
    Compensation(CompensationReport),
    Outages(Vec<OutageRow>),
    Maintenance(Vec<MaintenanceRow>),
    /// `outage record`: what the store did with it.
    OutageRecorded(OutageRecordedRow),
    Operators(Vec<OperatorRow>),
    Tariff(Tariff),
    Dunning(DunningRule),
    Issuer(IssuerInfo),
    Ledger(LedgerReport),
    /// A document to print or save as it is (CSV, a printable invoice).
    Document(Document),
}

impl Output {
    pub fn message(text: impl Into<String>) -> Output {
        Output::Message(text.into())
    }
}

/// `contract add`: the new contract's first term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractAdded {
    pub contract: String,
    pub accounts: u32,
    pub start: NaiveDate,
    pub first_term_end: NaiveDate,
    pub cancellation_deadline: NaiveDate,
}

/// `contract add-accounts`: an additional contract (art. 13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsAdded {
    pub contract: String,
    pub accounts: u32,
    pub start: NaiveDate,
    pub account_quota: u64,
    pub first_term_end: NaiveDate,
}

/// `contract cancel`: when the service ends (art. 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationAccepted {
    pub contract: String,
    pub received: NaiveDate,
    pub requested_end: Option<NaiveDate>,
    /// The last day of service.
    pub effective: NaiveDate,
    /// The requested month end was too late for its deadline; `effective` is later.
    pub late: bool,
}

/// `account add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAdded {
    pub account: String,
    pub contract: String,
    pub accounts_used: u64,
    pub account_quota: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ContractState", rename_all = "snake_case")]
enum ContractStateDef {
    Active,
    Suspended,
    Terminated,
    Cancelled,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "AccountState", rename_all = "snake_case")]
enum AccountStateDef {
    Active,
    Locked,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "TermKind", rename_all = "snake_case")]
enum TermKindDef {
    Basic,
    Additional,
}

/// One line of `contract list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractSummary {
    pub contract: String,
    pub kind: ContractKind,
    #[serde(with = "ContractStateDef")]
    pub state: ContractState,
    pub accounts_used: u64,
    pub account_quota: u64,
    /// Service start of the basic contract.
    pub start: NaiveDate,
    pub admin_email: String,
}

/// `contract show`: everything about one contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractDetails {
    pub name: String,
    pub kind: ContractKind,
    #[serde(with = "ContractStateDef")]
    pub state: ContractState,
    pub state_reason: Option<String>,
    pub address: String,
    pub phone: String,
    pub department: String,
    pub sales_agent: Option<String>,
    pub admin_name: String,
    pub admin_email: String,
    /// The account the administrator logs in with (`contract admin`).
    pub admin_login: Option<String>,
    pub accounts_used: u64,
    /// Basic plus additional contracts (art. 12).
    pub account_quota: u64,
    /// Client devices each account may register (`contract set NAME device-limit N`).
    pub device_limit: u32,
    pub current_term: CurrentTerm,
    /// A termination that takes effect later (art. 24-3).
    pub termination_scheduled_at: Option<DateTime<Utc>>,
    /// A termination waits for its notice to be sent: it takes effect five days after
    /// (art. 24-3), and `termination_scheduled_at` is set then.
    pub termination_on_notice: bool,
    /// The last day of service of a terminated contract (art. 24).
    pub ended_on: Option<NaiveDate>,
    /// The basic contract first, then the additional ones (art. 12, 13).
    pub contracts: Vec<TermRow>,
    /// Recorded changes (art. 16, 17), oldest first.
    pub history: Vec<HistoryRow>,
    pub cancellation: Option<CancellationInfo>,
}

/// Where the contract stands today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CurrentTerm {
    NotStarted {
        starts: NaiveDate,
    },
    Active {
        start: NaiveDate,
        end: NaiveDate,
        /// 0 in the first term, then 1, 2, ... (art. 14).
        renewal: u32,
        /// The last day a cancellation for this term's end may arrive.
        cancellation_deadline: NaiveDate,
        renews: bool,
        /// The last day of service, if the contract ends within this term.
        last_day: Option<NaiveDate>,
    },
    Ended {
        last_day: NaiveDate,
    },
    /// The stored data does not give a term (a cancellation an earlier version accepted
    /// before the start): shown, so that the operator can correct it.
    Unknown {
        error: String,
    },
}

/// A basic or additional contract (art. 12, 13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermRow {
    #[serde(with = "TermKindDef")]
    pub kind: TermKind,
    pub start: NaiveDate,
    pub accounts: u32,
    pub first_term_end: NaiveDate,
}

/// One recorded change of a contract field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub by: String,
    pub field: String,
    pub was: String,
    pub now: String,
}

/// A recorded cancellation (art. 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationInfo {
    pub received: NaiveDate,
    pub requested_end: Option<NaiveDate>,
    /// The last day of service.
    pub effective: NaiveDate,
    pub recorded_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub account: String,
    pub contract: String,
    #[serde(with = "AccountStateDef")]
    pub state: AccountState,
    /// Only registered devices may log in.
    pub device_binding: bool,
    /// Console logins need a one-time code (TOTP) after the password.
    #[serde(default)]
    pub totp: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRow {
    pub node: u32,
    pub name: String,
    pub account: String,
    pub overlay_ip: Ipv4Addr,
    pub public_key: Key32,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRow {
    pub target: String,
    pub target_account: String,
    pub granted_to: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub session: i64,
    pub account: String,
    pub device: String,
    pub role: Role,
    pub overlay_ip: Ipv4Addr,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// One client device (`device list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    pub node: u32,
    pub account: String,
    pub name: String,
    pub overlay_ip: Ipv4Addr,
    pub public_key: Key32,
    pub registered: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Has a live session (as the store records it).
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub account: Option<String>,
    pub source: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub contract: String,
    /// The administrator's e-mail; `None` when the contract has none.
    pub to: Option<String>,
    pub kind: String,
    pub subject: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The delivery state as the table shows it: the time it was sent, `unsent: ERROR`,
    /// or `in the outbox` (kept for scripts that read it; `sent_at` and `last_error`
    /// carry the same, typed).
    pub sent: String,
}

/// `invoice`: every invoice raised up to a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceReport {
    pub contract: String,
    pub up_to: NaiveDate,
    pub invoices: Vec<InvoiceInfo>,
    /// Sum of the invoices' totals, in yen.
    pub total: Yen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceInfo {
    /// `basic`, or `additional N`.
    pub contract_part: String,
    pub issued: NaiveDate,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Yen,
    pub tax_rate_bp: u32,
    pub tax: Yen,
    pub total: Yen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub item: String,
    pub amount: Yen,
}

/// `compensation`: what recorded outages earn a contract (art. 35).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompensationReport {
    pub contract: String,
    /// Every recorded outage.
    pub outages: usize,
    /// Those within the contract's service period and of 120 h or more.
    pub outages_in_period: usize,
    /// Whole 24 h days of those outages.
    pub compensable_days: u64,
    /// The annual usage fee of the accounts in force during the outages.
    pub annual_fee: Yen,
    pub compensation: Yen,
    /// Seconds of recorded outage inside planned maintenance windows, not counted (art. 34, 35-1).
    #[serde(default)]
    pub maintenance_excluded_s: i64,
    /// The outages that earn compensation.
    #[serde(default)]
    pub counted: Vec<CountedOutageRow>,
}

/// One outage a compensation counts (UTC, clipped to the service period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountedOutageRow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub days: u64,
    pub annual_fee: Yen,
}

/// `maintenance list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceRow {
    pub id: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub emergency: bool,
    pub notice_days: u32,
    /// `planned`, `in progress`, `ended` or `cancelled`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageRow {
    pub id: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration_s: i64,
    pub note: String,
    /// Who recorded it (`monitor:NAME`); absent for outages typed in by hand.
    #[serde(default)]
    pub source: Option<String>,
}

/// `outage record`: the outage as stored, and whether this call added it, extended its
/// end, or found it recorded already (a retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageRecordedRow {
    pub id: i64,
    pub source: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `added`, `extended` or `unchanged`.
    pub outcome: String,
}

/// `operator list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRow {
    pub name: String,
    pub role: OperatorRole,
    pub created: DateTime<Utc>,
}

/// A store time as a date-time; out-of-range values (never written by mcvpn) show as
/// the epoch rather than failing a whole listing.
pub fn time(t: crate::store::UnixTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// `issuer show|set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerInfo {
    pub name: String,
    pub registration_number: String,
}

/// `payment list`: invoices with their states, and the payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerReport {
    pub contract: String,
    /// The day the states are for.
    pub today: NaiveDate,
    pub invoices: Vec<LedgerRow>,
    pub payments: Vec<PaymentRow>,
    /// Unpaid, in yen.
    pub outstanding: Yen,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub invoice: i64,
    pub part: String,
    pub issued: NaiveDate,
    pub due: NaiveDate,
    pub total: Yen,
    pub paid: Yen,
    pub settled_on: Option<NaiveDate>,
    pub state: InvoiceState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRow {
    pub id: i64,
    pub invoice: i64,
    pub amount: Yen,
    pub paid_on: NaiveDate,
}

/// A document (`text/csv`, `text/plain`) and a file name to save it under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub media_type: String,
    pub file_name: String,
    pub content: String,
}
