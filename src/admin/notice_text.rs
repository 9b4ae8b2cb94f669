//! The words of the notices to account administrators (art. 23-2, 24-3, 39): Japanese
//! first, the English text below it, each naming the article it applies.
//!
//! The text comes from templates (minijinja, Jinja's syntax) kept in files: built into the
//! binary from `templates/notices/`, and replaced one by one by files of the same name in
//! the operator's notice template directory (`--notice-templates`, default
//! [`DEFAULT_DIR`]). A notice file's first line is the e-mail subject, then one empty line,
//! then the body; `header.txt` and `footer.txt` are shared by all of them.
//!
//! A broken template must not surface on the day a suspension is made: [`NoticeTemplates::load`]
//! renders every notice with sample values in strict mode (a name the notice does not
//! provide is an error) and the hub and `mcvpn admin` refuse to start with the file and line.
//!
//! A notice is rendered when it is queued and the store keeps the text: what the outbox
//! records is what was sent, whatever the templates say later.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::NaiveDate;
use minijinja::{Environment, UndefinedBehavior, Value};

use crate::store::ContractRecord;

/// Where an operator's templates are looked for when no directory is given.
pub const DEFAULT_DIR: &str = "/etc/mcvpn/notices";

/// A template file larger than this is refused (a notice is a few lines).
const MAX_TEMPLATE_BYTES: u64 = 64 * 1024;

/// The built-in templates, by file name.
const BUILT_IN: &[(&str, &str)] = &[
    ("header.txt", include_str!("../../templates/notices/header.txt")),
    ("footer.txt", include_str!("../../templates/notices/footer.txt")),
    ("suspension.txt", include_str!("../../templates/notices/suspension.txt")),
    ("resumption.txt", include_str!("../../templates/notices/resumption.txt")),
    (
        "termination.txt",
        include_str!("../../templates/notices/termination.txt"),
    ),
    (
        "termination-undelivered.txt",
        include_str!("../../templates/notices/termination-undelivered.txt"),
    ),
    (
        "cancellation.txt",
        include_str!("../../templates/notices/cancellation.txt"),
    ),
    ("renewal.txt", include_str!("../../templates/notices/renewal.txt")),
    (
        "account-locked.txt",
        include_str!("../../templates/notices/account-locked.txt"),
    ),
    ("invoice.txt", include_str!("../../templates/notices/invoice.txt")),
    (
        "payment-reminder.txt",
        include_str!("../../templates/notices/payment-reminder.txt"),
    ),
    (
        "nonpayment-suspension.txt",
        include_str!("../../templates/notices/nonpayment-suspension.txt"),
    ),
    (
        "nonpayment-resumption.txt",
        include_str!("../../templates/notices/nonpayment-resumption.txt"),
    ),
    (
        "maintenance.txt",
        include_str!("../../templates/notices/maintenance.txt"),
    ),
    (
        "maintenance-reminder.txt",
        include_str!("../../templates/notices/maintenance-reminder.txt"),
    ),
    (
        "maintenance-cancelled.txt",
        include_str!("../../templates/notices/maintenance-cancelled.txt"),
    ),
    (
        "compensation.txt",
        include_str!("../../templates/notices/compensation.txt"),
    ),
];

/// Files in the template directory that are not templates (the built-in README copied along).
fn is_ignored(name: &str) -> bool {
    name.starts_with("README") || name.starts_with('.') || name.ends_with('~')
}

/// One notice and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The operator suspended the contract's use (art. 23).
    Suspension { since: NaiveDate, reason: String },
    /// The suspension was lifted.
    Resumption { since: NaiveDate },
    /// The contract is terminated at once (art. 24).
    Termination { since: NaiveDate, reason: String },
    /// The termination takes effect five days after this notice is sent, even if it does
    /// not arrive (art. 24-3).
    TerminationUndelivered { reason: String },
    /// A cancellation was accepted (art. 18); `late`: the requested month end's deadline
    /// had passed and `effective` is the next possible one.
    Cancellation {
        received: NaiveDate,
        effective: NaiveDate,
        requested_end: Option<NaiveDate>,
        late: bool,
    },
    /// The term renews unless a cancellation arrives by the deadline (art. 14, 18).
    Renewal { term_end: NaiveDate, deadline: NaiveDate },
    /// An account of the contract was locked.
    AccountLocked { user: String, by: String },
    /// An invoice was raised (art. 28); `late_interest`: it is the late interest of
    /// another one (art. 31), which bears none itself. Amounts are formatted yen.
    Invoice {
        number: i64,
        part: String,
        issued: NaiveDate,
        total: String,
        tax: String,
        due: NaiveDate,
        late_interest: bool,
    },
    /// An invoice is overdue; also the advance notice of the suspension on
    /// `suspension_day` (art. 23-2) when the dunning rule suspends.
    PaymentReminder {
        number: i64,
        part: String,
        issued: NaiveDate,
        total: String,
        due: NaiveDate,
        balance: String,
        suspension_day: Option<NaiveDate>,
    },
    /// Suspended by the dunning rule for an unpaid invoice (art. 23-1(1)).
    NonpaymentSuspension {
        since: NaiveDate,
        number: i64,
        total: String,
        due: NaiveDate,
    },
    /// Every overdue invoice is paid: the suspension for non-payment is lifted.
    NonpaymentResumption { since: NaiveDate },
    /// The advance notice of a maintenance stop (art. 34-2); `emergency`: announced at
    /// once, without the usual lead time. Times are formatted in the operator's zone.
    Maintenance(MaintenanceWindow),
    /// The same, the day before the window.
    MaintenanceReminder(MaintenanceWindow),
    /// An announced window will not take place.
    MaintenanceCancelled(MaintenanceWindow),
    /// What recorded outages earn the contract (art. 35), outage by outage.
    CompensationStatement(Statement),
}

/// A maintenance window as the notices tell of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceWindow {
    pub id: i64,
    pub start: String,
    pub end: String,
    pub reason: String,
    pub emergency: bool,
}

/// A compensation statement (art. 35): amounts are formatted yen, times local.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    /// The day it was made.
    pub on: NaiveDate,
    pub outages: Vec<StatementOutage>,
    pub days: u64,
    pub amount: String,
    /// Hours of recorded outage that fell in planned maintenance and do not count.
    pub excluded_hours: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatementOutage {
    pub start: String,
    pub end: String,
    pub hours: String,
    pub days: u64,
    pub annual_fee: String,
}

impl Notice {
    /// The notice's kind in the store (`mcvpn admin notice list`, the tests filter on it).
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Suspension { .. } => "suspension",
            Notice::Resumption { .. } => "resumption",
            Notice::Termination { .. } | Notice::TerminationUndelivered { .. } => "termination",
            Notice::Cancellation { .. } => "cancellation",
            Notice::Renewal { .. } => "renewal",
            Notice::AccountLocked { .. } => "account-locked",
            Notice::Invoice { .. } => "invoice",
            Notice::PaymentReminder { .. } => "payment-reminder",
            Notice::NonpaymentSuspension { .. } => "nonpayment-suspension",
            Notice::NonpaymentResumption { .. } => "nonpayment-resumption",
            Notice::Maintenance(_) => "maintenance",
            Notice::MaintenanceReminder(_) => "maintenance-reminder",
            Notice::MaintenanceCancelled(_) => "maintenance-cancelled",
            Notice::CompensationStatement(_) => "compensation",
        }
    }

    /// An advance notice of a suspension or termination: it goes to the sales agent of a
    /// contract sold through one (art. 23-2, 24-3), the others to the administrator (art. 39).
    pub fn is_advance_notice(&self) -> bool {
        match self {
            Notice::Suspension { .. }
            | Notice::Termination { .. }
            | Notice::TerminationUndelivered { .. }
            | Notice::PaymentReminder { .. }
            | Notice::NonpaymentSuspension { .. } => true,
            Notice::Resumption { .. }
            | Notice::Cancellation { .. }
            | Notice::Renewal { .. }
            | Notice::AccountLocked { .. }
            | Notice::Invoice { .. }
            | Notice::NonpaymentResumption { .. }
            | Notice::Maintenance(_)
            | Notice::MaintenanceReminder(_)
            | Notice::MaintenanceCancelled(_)
            | Notice::CompensationStatement(_) => false,
        }
    }

    /// The template file that words it.
    fn template(&self) -> &'static str {
        match self {
            Notice::Suspension { .. } => "suspension.txt",
            Notice::Resumption { .. } => "resumption.txt",
            Notice::Termination { .. } => "termination.txt",
            Notice::TerminationUndelivered { .. } => "termination-undelivered.txt",
            Notice::Cancellation { .. } => "cancellation.txt",
            Notice::Renewal { .. } => "renewal.txt",
            Notice::AccountLocked { .. } => "account-locked.txt",
            Notice::Invoice { .. } => "invoice.txt",
            Notice::PaymentReminder { .. } => "payment-reminder.txt",
            Notice::NonpaymentSuspension { .. } => "nonpayment-suspension.txt",
            Notice::NonpaymentResumption { .. } => "nonpayment-resumption.txt",
            Notice::Maintenance(_) => "maintenance.txt",
            Notice::MaintenanceReminder(_) => "maintenance-reminder.txt",
            Notice::MaintenanceCancelled(_) => "maintenance-cancelled.txt",
            Notice::CompensationStatement(_) => "compensation.txt",
        }
    }

    /// The values the template may use besides the common ones.
    fn values(&self) -> Vec<(&'static str, Value)> {
        let date = |d: &NaiveDate| Value::from(d.to_string());
        match self {
            Notice::Suspension { since, reason } | Notice::Termination { since, reason } => {
                vec![("since", date(since)), ("reason", Value::from(reason.as_str()))]
            }
            Notice::Resumption { since } => vec![("since", date(since))],
            Notice::TerminationUndelivered { reason } => vec![("reason", Value::from(reason.as_str()))],
            Notice::Cancellation {
                received,
                effective,
                requested_end,
                late,
            } => vec![
                ("received", date(received)),
                ("effective", date(effective)),
                (
                    "requested_end",
                    Value::from(requested_end.map(|d| d.to_string()).unwrap_or_default()),
                ),
                ("late", Value::from(*late)),
            ],
            Notice::Renewal { term_end, deadline } => vec![("term_end", date(term_end)), ("deadline", date(deadline))],
            Notice::AccountLocked { user, by } => {
                vec![("user", Value::from(user.as_str())), ("by", Value::from(by.as_str()))]
            }
            Notice::Invoice {
                number,
                part,
                issued,
                total,
                tax,
                due,
                late_interest,
            } => vec![
                ("number", Value::from(*number)),
                ("part", Value::from(part.as_str())),
                ("issued", date(issued)),
                ("total", Value::from(total.as_str())),
                ("tax", Value::from(tax.as_str())),
                ("due", date(due)),
                ("late_interest", Value::from(*late_interest)),
            ],
            Notice::PaymentReminder {
                number,
                part,
                issued,
                total,
                due,
                balance,
                suspension_day,
            } => vec![
                ("number", Value::from(*number)),
                ("part", Value::from(part.as_str())),
                ("issued", date(issued)),
                ("total", Value::from(total.as_str())),
                ("due", date(due)),
                ("balance", Value::from(balance.as_str())),
                (
                    "suspension_day",
                    Value::from(suspension_day.map(|d| d.to_string()).unwrap_or_default()),
                ),
            ],
            Notice::NonpaymentSuspension {
                since,
                number,
                total,
                due,
            } => vec![
                ("since", date(since)),
                ("number", Value::from(*number)),
                ("total", Value::from(total.as_str())),
                ("due", date(due)),
            ],
            Notice::NonpaymentResumption { since } => vec![("since", date(since))],
            Notice::Maintenance(w) | Notice::MaintenanceReminder(w) | Notice::MaintenanceCancelled(w) => vec![
                ("id", Value::from(w.id)),
                ("start", Value::from(w.start.as_str())),
                ("end", Value::from(w.end.as_str())),
                ("reason", Value::from(w.reason.as_str())),
                ("emergency", Value::from(w.emergency)),
            ],
            Notice::CompensationStatement(st) => vec![
                ("on", date(&st.on)),
                ("outages", Value::from_serialize(&st.outages)),
                ("days", Value::from(st.days)),
                ("amount", Value::from(st.amount.as_str())),
                ("excluded_hours", Value::from(st.excluded_hours.as_str())),
            ],
        }
    }

    /// One notice of every kind, with sample values: what a template is checked with.
    fn samples() -> Vec<Notice> {
        let day = NaiveDate::from_ymd_opt(2027, 3, 31).expect("a valid date");
        vec![
            Notice::Suspension {
                since: day,
                reason: "sample reason".into(),
            },
            Notice::Resumption { since: day },
            Notice::Termination {
                since: day,
                reason: "sample reason".into(),
            },
            Notice::TerminationUndelivered {
                reason: "sample reason".into(),
            },
            Notice::Cancellation {
                received: day,
                effective: day,
                requested_end: Some(day),
                late: true,
            },
            Notice::Renewal {
                term_end: day,
                deadline: day,
            },
            Notice::AccountLocked {
                user: "alice".into(),
                by: "operator".into(),
            },
            Notice::Invoice {
                number: 7,
                part: "basic".into(),
                issued: day,
                total: "¥110,000".into(),
                tax: "¥10,000".into(),
                due: day,
                late_interest: false,
            },
            Notice::PaymentReminder {
                number: 7,
                part: "basic".into(),
                issued: day,
                total: "¥110,000".into(),
                due: day,
                balance: "¥110,000".into(),
                suspension_day: Some(day),
            },
            Notice::NonpaymentSuspension {
                since: day,
                number: 7,
                total: "¥110,000".into(),
                due: day,
            },
            Notice::NonpaymentResumption { since: day },
            Notice::Maintenance(sample_window(false)),
            Notice::Maintenance(sample_window(true)),
            Notice::MaintenanceReminder(sample_window(false)),
            Notice::MaintenanceCancelled(sample_window(false)),
            Notice::CompensationStatement(Statement {
                on: day,
                outages: vec![StatementOutage {
                    start: "2027-03-01 09:00:00 +09:00".into(),
                    end: "2027-03-06 19:00:00 +09:00".into(),
                    hours: "130.0".into(),
                    days: 5,
                    annual_fee: "¥1,200,000".into(),
                }],
                days: 5,
                amount: "¥16,438".into(),
                excluded_hours: "3.0".into(),
            }),
            Notice::CompensationStatement(Statement {
                on: day,
                outages: vec![],
                days: 0,
                amount: "¥0".into(),
                excluded_hours: "0.0".into(),
            }),
        ]
    }
}

fn sample_window(emergency: bool) -> MaintenanceWindow {
    MaintenanceWindow {
        id: 3,
        start: "2027-03-20 02:00:00 +09:00".into(),
        end: "2027-03-20 05:00:00 +09:00".into(),
        reason: "ハブの更新 / hub upgrade".into(),
        emergency,
    }
}

/// A template that cannot be used, with the file and line to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "notice template {}, line {line}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "notice template {}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// The notice templates in force: the built-in ones, some replaced by the operator's files.
pub struct NoticeTemplates {
    env: Environment<'static>,
    /// Where each template came from (the built-in name, or the operator's file).
    origin: BTreeMap<&'static str, PathBuf>,
}

impl fmt::Debug for NoticeTemplates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoticeTemplates").field("origin", &self.origin).finish()
    }
}

impl NoticeTemplates {
    /// Only the built-in templates.
    pub fn built_in() -> NoticeTemplates {
        let sources = BUILT_IN
            .iter()
            .map(|(name, src)| (*name, builtin_path(name), (*src).to_string()));
        Self::from_sources(sources).expect("the built-in notice templates are checked by the tests")
    }

    /// The built-in templates, each replaced by the file of the same name in `dir` if
    /// there is one. A missing directory is the built-in set unless `required` (the
    /// operator named it). Every notice is rendered once with sample values, so a
    /// template that names a value the notice does not have fails here, not on the day
    /// a suspension is made.
    pub fn load(dir: &Path, required: bool) -> Result<NoticeTemplates, TemplateError> {
        let err = |file: &Path, message: String| TemplateError {
            file: file.to_path_buf(),
            line: None,
            message,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Self::built_in()),
            Err(e) => return Err(err(dir, format!("cannot read the directory: {e}"))),
        };
        let mut replaced: BTreeMap<&'static str, (PathBuf, String)> = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| err(dir, format!("cannot read the directory: {e}")))?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if is_ignored(&file_name) || path.is_dir() {
                continue;
            }
            let Some((name, _)) = BUILT_IN.iter().find(|(name, _)| *name == file_name) else {
                let known: Vec<_> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                return Err(err(
                    &path,
                    format!("not a notice template name; the names are {}", known.join(", ")),
                ));
            };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if len > MAX_TEMPLATE_BYTES {
                return Err(err(
                    &path,
                    format!("{len} bytes; a template may have at most {MAX_TEMPLATE_BYTES}"),
                ));
            }
            let text = std::fs::read(&path).map_err(|e| err(&path, format!("cannot read: {e}")))?;
            let text = String::from_utf8(text).map_err(|_| err(&path, "is not UTF-8 text".into()))?;
            replaced.insert(name, (path, text));
        }
        let sources = BUILT_IN.iter().map(|(name, src)| match replaced.remove(name) {
            Some((path, text)) => (*name, path, text),
            None => (*name, builtin_path(name), (*src).to_string()),
        });
        Self::from_sources(sources)
    }

    fn from_sources(
        sources: impl Iterator<Item = (&'static str, PathBuf, String)>,
    ) -> Result<NoticeTemplates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // `{% if %}` on a line of its own leaves no empty line behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        let mut origin = BTreeMap::new();
        for (name, path, text) in sources {
            let text = text.replace("\r\n", "\n");
            let shared = name == "header.txt" || name == "footer.txt";
            let (subject, body, body_line) = if shared {
                (None, text, 1)
            } else {
                let (subject, rest) = text.split_once('\n').unwrap_or((&text, ""));
                let Some(body) = rest.strip_prefix('\n') else {
                    return Err(TemplateError {
                        file: path,
                        line: Some(2),
                        message: "the first line is the subject and the second must be empty".into(),
                    });
                };
                (Some(subject.to_string()), body.to_string(), 3)
            };
            let at = |e: minijinja::Error, first_line: usize| TemplateError {
                file: path.clone(),
                line: e.line().map(|l| l + first_line - 1),
                message: e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string()),
            };
            if let Some(subject) = subject {
                env.add_template_owned(subject_name(name), subject)
                    .map_err(|e| at(e, 1))?;
            }
            env.add_template_owned(name, body).map_err(|e| at(e, body_line))?;
            origin.insert(name, path);
        }
        let templates = NoticeTemplates { env, origin };
        let sample = sample_contract();
        for notice in Notice::samples() {
            templates.try_render(&sample, &notice, None)?;
            templates.try_render(&sample, &notice, Some("Sample Agent K.K."))?;
        }
        Ok(templates)
    }

    /// The files the templates in force came from, by name (`built-in:NAME` for the others).
    pub fn origins(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.origin.iter().map(|(name, path)| (*name, path.as_path()))
    }

    /// Every notice with sample values, each under its template's origin: what
    /// `mcvpn admin notice preview` shows.
    pub fn preview(&self) -> String {
        let c = sample_contract();
        let mut out = String::new();
        for notice in Notice::samples() {
            let (subject, body) = self.render(&c, &notice, None);
            let origin = self.origin.get(notice.template()).map(|p| p.display().to_string());
            out.push_str(&format!(
                "===== {} ({})\nSubject: {subject}\n\n{body}\n",
                notice.kind(),
                origin.unwrap_or_default()
            ));
        }
        out.trim_end().to_string()
    }

    /// The subject and the body of `notice` to contract `c`'s administrator, or to its
    /// sales agent when `agent` names it (the notice is addressed to the agent).
    pub fn render(&self, c: &ContractRecord, notice: &Notice, agent: Option<&str>) -> (String, String) {
        match self.try_render(c, notice, agent) {
            Ok(text) => text,
            Err(e) => {
                // Checked at load with every notice, so only a value the samples do not
                // reach gets here; the notice goes out in the built-in words rather than
                // the change it tells of failing.
                tracing::warn!(error = %e, "notice template failed; the built-in text is used");
                built_in()
                    .try_render(c, notice, agent)
                    .expect("the built-in notice templates render")
            }
        }
    }

    fn try_render(
        &self,
        c: &ContractRecord,
        notice: &Notice,
        agent: Option<&str>,
    ) -> Result<(String, String), TemplateError> {
        let mut values: BTreeMap<&str, Value> = BTreeMap::new();
        values.insert("contract", Value::from(c.name.as_str()));
        values.insert("admin_name", Value::from(c.admin_name.as_str()));
        values.insert("tz", Value::from(crate::contract::operator_tz().to_string()));
        values.insert("agent", Value::from(agent.unwrap_or_default()));
        values.extend(notice.values());
        let name = notice.template();
        let render = |template: &str| -> Result<String, TemplateError> {
            let first_line = if template == name { 3 } else { 1 };
            self.env
                .get_template(template)
                .and_then(|t| t.render(&values))
                .map_err(|e| {
                    // An error inside an included file is about that file.
                    let e = innermost(&e);
                    let in_notice = e.name() == Some(template);
                    TemplateError {
                        file: e
                            .name()
                            .and_then(|n| self.origin.get(n.trim_end_matches("#subject")))
                            .or_else(|| self.origin.get(name))
                            .cloned()
                            .unwrap_or_default(),
                        line: e.line().map(|l| if in_notice { l + first_line - 1 } else { l }),
                        message: e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string()),
                    }
                })
        };
        // A subject is one line whatever a value holds (no header injection).
        let subject = render(&subject_name(name))?
            .replace(['\r', '\n'], " ")
            .trim()
            .to_string();
        let body = render(name)?;
        Ok((subject, body))
    }
}

/// The error a chain of `{% include %}`s wraps: the one that names the broken file.
fn innermost(e: &minijinja::Error) -> &minijinja::Error {
    let mut e = e;
    while let Some(inner) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<minijinja::Error>()) {
        e = inner;
    }
    e
}

fn subject_name(template: &str) -> String {
    format!("{template}#subject")
}

fn builtin_path(name: &str) -> PathBuf {
    PathBuf::from(format!("built-in:{name}"))
}

fn sample_contract() -> ContractRecord {
    ContractRecord {
        id: 0,
        name: "sample".into(),
        kind: crate::contract::ContractKind::Corporation,
        state: crate::store::ContractState::Active,
        state_reason: None,
        address: String::new(),
        phone: String::new(),
        department: String::new(),
        sales_agent: None,
        admin_name: "Sample".into(),
        admin_email: "admin@example.com".into(),
        admin_account_id: None,
        terminate_at: None,
        created_at: 0,
        ended_on: None,
        terminate_on_notice: false,
        device_limit: 0,
    }
}

static BUILT_IN_SET: OnceLock<NoticeTemplates> = OnceLock::new();
static ACTIVE: OnceLock<NoticeTemplates> = OnceLock::new();

fn built_in() -> &'static NoticeTemplates {
    BUILT_IN_SET.get_or_init(NoticeTemplates::built_in)
}

/// Makes `templates` the ones every notice of this process is worded with. Called once at
/// the edge (the hub's and `mcvpn admin`'s start), like the operator's time zone: one
/// per process, and passing it down to every place a notice is queued would thread it
/// through the whole admin API for one setting. Later calls change nothing.
pub fn install(templates: NoticeTemplates) {
    let _ = ACTIVE.set(templates);
}

/// The templates in force: the installed ones, or the built-in ones.
pub fn active() -> &'static NoticeTemplates {
    ACTIVE.get().unwrap_or_else(built_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn every_built_in_notice_is_japanese_then_english_and_names_its_article() {
        let t = NoticeTemplates::built_in();
        let c = sample_contract();
        for n in Notice::samples() {
            let (subject, body) = t.render(&c, &n, None);
            assert!(subject.starts_with("【mcvpn】"), "{subject}");
            assert!(!subject.contains('\n'));
            let (ja, en) = body
                .split_once("----- English -----")
                .unwrap_or_else(|| panic!("{body}"));
            assert!(ja.contains("約款第") || ja.contains("利用約款"), "{ja}");
            assert!(en.contains("art. "), "{en}");
            assert!(ja.starts_with("Sample 様"), "{ja}");
            assert!(body.ends_with("mcvpn service operator\n"), "{body:?}");
            assert!(!body.contains("{{") && !body.contains("{%"), "{body}");
        }
    }

    #[test]
    fn the_late_sentence_only_when_late() {
        let t = NoticeTemplates::built_in();
        let c = sample_contract();
        let n = |late: bool| Notice::Cancellation {
            received: d(2027, 5, 20),
            effective: d(2027, 6, 30),
            requested_end: late.then(|| d(2027, 5, 31)),
            late,
        };
        let (_, on_time) = t.render(&c, &n(false), None);
        let (_, late) = t.render(&c, &n(true), None);
        assert!(
            !on_time.contains("期限を過ぎて") && !on_time.contains("had passed"),
            "{on_time}"
        );
        assert!(late.contains("2027-05-31 は解約申込期限を過ぎていた"), "{late}");
        assert!(
            late.contains("The deadline for the requested 2027-05-31 had passed"),
            "{late}"
        );
        // No empty line is left where the {% if %} was.
        assert!(!on_time.contains("\n\n\n"), "{on_time}");
    }

    #[test]
    fn a_notice_to_the_sales_agent_greets_the_agent() {
        let t = NoticeTemplates::built_in();
        let c = sample_contract();
        let (_, body) = t.render(
            &c,
            &Notice::NonpaymentSuspension {
                since: d(2028, 3, 1),
                number: 3,
                total: "¥132,000".into(),
                due: d(2028, 1, 31),
            },
            Some("Agent KK"),
        );
        assert!(
            body.starts_with("Agent KK 御中（ご契約「sample」の販売代理店様。"),
            "{body}"
        );
        assert!(!body.contains("Sample 様"), "{body}");
    }

    #[test]
    fn an_empty_administrator_name_is_greeted_by_role() {
        let t = NoticeTemplates::built_in();
        let mut c = sample_contract();
        c.admin_name.clear();
        let (_, body) = t.render(&c, &Notice::Resumption { since: d(2027, 1, 5) }, None);
        assert!(body.starts_with("アカウント管理者 様\n"), "{body}");
    }

    #[test]
    fn an_operator_file_replaces_its_built_in_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("footer.txt"),
            "\n株式会社サンプル 運用窓口 / Sample K.K. operations\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("resumption.txt"),
            "ご利用再開: {{ contract }}\n\n{% include \"header.txt\" %}\n{{ since }} に再開しました（第23条）。\n{% include \"footer.txt\" %}",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.txt"), "not a template").unwrap();
        let t = NoticeTemplates::load(dir.path(), true).unwrap();
        let c = sample_contract();
        let (subject, body) = t.render(&c, &Notice::Resumption { since: d(2027, 1, 5) }, None);
        assert_eq!(subject, "ご利用再開: sample");
        assert_eq!(
            body,
            "Sample 様\n2027-01-05 に再開しました（第23条）。\n\n株式会社サンプル 運用窓口 / Sample K.K. operations\n"
        );
        // The others keep their built-in words, with the operator's footer.
        let (subject, body) = t.render(
            &c,
            &Notice::Suspension {
                since: d(2027, 1, 1),
                reason: "x".into(),
            },
            None,
        );
        assert!(subject.starts_with("【mcvpn】ご利用停止"), "{subject}");
        assert!(body.ends_with("Sample K.K. operations\n"), "{body}");
        let origins: BTreeMap<_, _> = t.origins().collect();
        assert_eq!(origins["resumption.txt"], dir.path().join("resumption.txt"));
        assert_eq!(origins["suspension.txt"], Path::new("built-in:suspension.txt"));
    }

    #[test]
    fn a_broken_template_is_refused_with_its_file_and_line() {
        let check = |name: &str, text: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), text).unwrap();
            let e = NoticeTemplates::load(dir.path(), true).unwrap_err();
            assert_eq!(e.file, dir.path().join(name), "{e}");
            e
        };
        // A value the notice does not have (a typo), on the body's second line = file line 4.
        let e = check("suspension.txt", "subject {{ contract }}\n\nfirst line\n{{ reasn }}\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().contains("line 4"), "{e}");
        // A syntax error in the subject.
        let e = check("renewal.txt", "subject {% if %}\n\nbody\n");
        assert_eq!(e.line, Some(1), "{e}");
        // No empty line after the subject.
        let e = check("termination.txt", "subject\nbody starts at once\n");
        assert_eq!(e.line, Some(2), "{e}");
        // A shared file with an error is named, not the notice including it.
        let e = check("footer.txt", "\n{{ operator_phone }}\n");
        assert_eq!(e.line, Some(2), "{e}");
        // A misspelt file name would silently never be used: refused.
        let e = check("suspention.txt", "x\n\ny\n");
        assert!(e.message.contains("not a notice template name"), "{e}");
        // Not UTF-8 (a file saved in Shift_JIS).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("header.txt"), b"\x82\xa0 \x97l\n").unwrap();
        let e = NoticeTemplates::load(dir.path(), true).unwrap_err();
        assert!(e.message.contains("UTF-8"), "{e}");
        // A directory the operator named must exist; the default one may be missing.
        assert!(NoticeTemplates::load(Path::new("/nonexistent/dir"), true).is_err());
        assert!(NoticeTemplates::load(Path::new("/nonexistent/dir"), false).is_ok());
    }

    #[test]
    fn the_preview_shows_every_notice_and_where_its_words_come_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("renewal.txt"), "更新 {{ term_end }}\n\n本文\n").unwrap();
        let preview = NoticeTemplates::load(dir.path(), true).unwrap().preview();
        for n in Notice::samples() {
            assert!(preview.contains(&format!("===== {} (", n.kind())), "{preview}");
        }
        assert!(
            preview.contains(&format!(
                "===== renewal ({})\nSubject: 更新 2027-03-31\n\n本文",
                dir.path().join("renewal.txt").display()
            )),
            "{preview}"
        );
        assert!(
            preview.contains("===== suspension (built-in:suspension.txt)"),
            "{preview}"
        );
    }

    #[test]
    fn a_value_cannot_add_lines_to_the_subject() {
        let t = NoticeTemplates::built_in();
        let c = sample_contract();
        let (subject, _) = t.render(
            &c,
            &Notice::AccountLocked {
                user: "eve\r\nBcc: x@example.com".into(),
                by: "operator".into(),
            },
            None,
        );
        assert!(!subject.contains('\n') && !subject.contains('\r'), "{subject}");
    }
}
