//! Printing admin answers: aligned columns for people, versioned JSON for scripts.
//!
//! [`text`] lays an [`Output`] out as the tables and sections people read (the same
//! text `mcvpn admin` always printed); [`json`] turns it into the document scripts read.
//! Listings print as a JSON array of objects (scripts index them as arrays); every
//! other answer is an object whose `version` is [`JSON_VERSION`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::api::{ContractDetails, CurrentTerm, Output, JSON_VERSION};
use super::billing::yen;

/// Text laid out for a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Message(String),
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Sections(Vec<(String, Text)>),
    /// A document printed as it is, lines and all (only hidden controls escaped).
    Document(String),
}

impl Text {
    fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Text {
        Text::Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }
}

/// Prints an answer on stdout: JSON, or the text with its fields escaped
/// ([`format_text`]). A reader that went away (`| head -1`) ends the printing quietly.
pub fn print(output: &Output, json: bool) {
    use std::io::Write;
    let shown = if json {
        to_json_string(output) + "\n"
    } else {
        format_text(&text(output))
    };
    // One write of the whole answer through a locked handle, not `println!`, which panics
    // when the pipe is closed; the command line also restores the default SIGPIPE action
    // (main.rs), so this error is only seen by library callers that do not.
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(shown.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "cannot print the answer");
        }
    }
}

/// The JSON document `mcvpn admin --json` prints.
pub fn to_json_string(output: &Output) -> String {
    serde_json::to_string_pretty(&JsonDoc(output)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialise an admin answer");
        serde_json::json!({ "version": JSON_VERSION, "error": e.to_string() }).to_string()
    })
}

/// The same document as a value.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::to_value(JsonDoc(output))
        .unwrap_or_else(|e| serde_json::json!({ "version": JSON_VERSION, "error": e.to_string() }))
}

/// `version` first, then the answer's own fields in their declared order.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    version: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct MessageDoc<'a> {
    message: &'a str,
}

/// Listings become arrays of row objects; everything else an object with `version`.
struct JsonDoc<'a>(&'a Output);

impl Serialize for JsonDoc<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn versioned<T: Serialize, S: serde::Serializer>(body: &T, s: S) -> Result<S::Ok, S::Error> {
            Versioned {
                version: JSON_VERSION,
                body,
            }
            .serialize(s)
        }
        match self.0 {
            Output::Message(text) => versioned(&MessageDoc { message: text }, s),
            Output::ContractAdded(a) => versioned(a, s),
            Output::AccountsAdded(a) => versioned(a, s),
            Output::CancellationAccepted(c) => versioned(c, s),
            Output::AccountAdded(a) => versioned(a, s),
            Output::Contract(c) => versioned(c.as_ref(), s),
            Output::Invoices(r) => versioned(r, s),
            Output::Compensation(r) => versioned(r, s),
            Output::Tariff(t) => versioned(t, s),
            Output::Dunning(r) => versioned(r, s),
            Output::Issuer(i) => versioned(i, s),
            Output::Ledger(r) => versioned(r, s),
            Output::Document(d) => versioned(d, s),
            Output::Contracts(rows) => rows.serialize(s),
            Output::Accounts(rows) => rows.serialize(s),
            Output::Targets(rows) => rows.serialize(s),
            Output::Grants(rows) => rows.serialize(s),
            Output::Sessions(rows) => rows.serialize(s),
            Output::Devices(rows) => rows.serialize(s),
            Output::Log(rows) => rows.serialize(s),
            Output::Notices(rows) => rows.serialize(s),
            Output::Outages(rows) => rows.serialize(s),
            Output::Maintenance(rows) => rows.serialize(s),
            Output::OutageRecorded(r) => versioned(r, s),
            Output::Operators(rows) => rows.serialize(s),
        }
    }
}

/// As `store::format_time` writes store times: local time in the operator's zone, with
/// its offset.
fn time(t: &DateTime<Utc>) -> String {
    crate::store::format_time(t.timestamp())
}

/// Lays an answer out for people.
pub fn text(output: &Output) -> Text {
    match output {
        Output::Message(text) => Text::Message(text.clone()),
        Output::ContractAdded(a) => Text::Message(format!(
            "contract {} added: {} accounts from {}, first term ends {}, cancellation deadline {}",
            a.contract, a.accounts, a.start, a.first_term_end, a.cancellation_deadline
        )),
        Output::AccountsAdded(a) => Text::Message(format!(
            "contract {}: {} more accounts from {} (quota now {}), this additional contract's first term ends {}",
            a.contract, a.accounts, a.start, a.account_quota, a.first_term_end
        )),
        Output::CancellationAccepted(c) => Text::Message(format!(
            "cancellation of {} accepted: service ends at the end of {}{}",
            c.contract,
            c.effective,
            if c.late {
                " (the requested month end was too late to meet its deadline)"
            } else {
                ""
            }
        )),
        Output::AccountAdded(a) => Text::Message(format!(
            "account {} added to contract {} ({} of {} accounts used)",
            a.account, a.contract, a.accounts_used, a.account_quota
        )),
        Output::Contracts(rows) => Text::table(
            &["contract", "kind", "state", "accounts", "start", "administrator"],
            rows.iter()
                .map(|c| {
                    vec![
                        c.contract.clone(),
                        c.kind.as_str().into(),
                        c.state.as_str().into(),
                        format!("{}/{}", c.accounts_used, c.account_quota),
                        c.start.to_string(),
                        c.admin_email.clone(),
                    ]
                })
                .collect(),
        ),
        Output::Contract(c) => contract_text(c),
        Output::Accounts(rows) => Text::table(
            &["account", "contract", "state", "devices", "created"],
            rows.iter()
                .map(|a| {
                    vec![
                        a.account.clone(),
                        a.contract.clone(),
                        a.state.as_str().into(),
                        if a.device_binding { "bound" } else { "any" }.into(),
                        time(&a.created_at),
                    ]
                })
                .collect(),
        ),
        Output::Targets(rows) => Text::table(
            &["node", "name", "account", "overlay_ip", "public_key", "last_seen"],
            rows.iter()
                .map(|d| {
                    vec![
                        d.node.to_string(),
                        d.name.clone(),
                        d.account.clone(),
                        d.overlay_ip.to_string(),
                        d.public_key.to_base64(),
                        d.last_seen.as_ref().map(time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect(),
        ),
        Output::Grants(rows) => Text::table(
            &["target", "target's account", "granted to", "since"],
            rows.iter()
                .map(|g| {
                    vec![
                        g.target.clone(),
                        g.target_account.clone(),
                        g.granted_to.clone(),
                        time(&g.since),
                    ]
                })
                .collect(),
        ),
        Output::Sessions(rows) => Text::table(
            &[
                "session",
                "account",
                "device",
                "role",
                "overlay_ip",
                "source",
                "started",
                "ended",
                "reason",
                "bytes_in",
                "bytes_out",
            ],
            rows.iter()
                .map(|s| {
                    vec![
                        s.session.to_string(),
                        s.account.clone(),
                        s.device.clone(),
                        s.role.as_str().into(),
                        s.overlay_ip.to_string(),
                        s.source.clone(),
                        time(&s.started_at),
                        s.ended_at.as_ref().map(time).unwrap_or_else(|| "-".into()),
                        s.end_reason.clone().unwrap_or_default(),
                        s.bytes_in.to_string(),
                        s.bytes_out.to_string(),
                    ]
                })
                .collect(),
        ),
        Output::Devices(rows) => Text::table(
            &[
                "node",
                "account",
                "name",
                "overlay_ip",
                "public_key",
                "registered",
                "last_seen",
                "online",
            ],
            rows.iter()
                .map(|d| {
                    vec![
                        d.node.to_string(),
                        d.account.clone(),
                        d.name.clone(),
                        d.overlay_ip.to_string(),
                        d.public_key.to_base64(),
                        time(&d.registered),
                        d.last_seen.as_ref().map(time).unwrap_or_else(|| "never".into()),
                        if d.online { "yes" } else { "no" }.into(),
                    ]
                })
                .collect(),
        ),
        Output::Log(rows) => Text::table(
            &["time", "actor", "action", "account", "source", "detail"],
            rows.iter()
                .map(|e| {
                    vec![
                        time(&e.at),
                        e.actor.clone(),
                        e.action.clone(),
                        e.account.clone().unwrap_or_default(),
                        e.source.clone().unwrap_or_default(),
                        e.detail.clone(),
                    ]
                })
                .collect(),
        ),
        Output::Notices(rows) => Text::table(
            &["id", "created", "contract", "to", "kind", "subject", "sent"],
            rows.iter()
                .map(|n| {
                    vec![
                        n.id.to_string(),
                        time(&n.created_at),
                        n.contract.clone(),
                        n.to.clone().unwrap_or_else(|| "(no administrator e-mail)".into()),
                        n.kind.clone(),
                        n.subject.clone(),
                        n.sent.clone(),
                    ]
                })
                .collect(),
        ),
        Output::Invoices(r) => {
            let mut rows = Vec::new();
            for inv in &r.invoices {
                let label = &inv.contract_part;
                for line in &inv.lines {
                    rows.push(vec![
                        inv.issued.to_string(),
                        label.clone(),
                        format!("{} .. {}", inv.term_start, inv.term_end),
                        line.item.clone(),
                        yen(line.amount),
                    ]);
                }
                rows.push(vec![
                    inv.issued.to_string(),
                    label.clone(),
                    String::new(),
                    format!(
                        "consumption tax {}.{}%",
                        inv.tax_rate_bp / 100,
                        inv.tax_rate_bp % 100 / 10
                    ),
                    yen(inv.tax),
                ]);
                rows.push(vec![
                    inv.issued.to_string(),
                    label.clone(),
                    String::new(),
                    "total".into(),
                    yen(inv.total),
                ]);
            }
            Text::Sections(vec![
                (
                    format!("invoices of {} raised up to {}", r.contract, r.up_to),
                    Text::table(&["issued", "contract", "term", "item", "amount"], rows),
                ),
                ("total invoiced".into(), Text::Message(yen(r.total))),
            ])
        }
        Output::Compensation(r) => Text::Message(format!(
            "{}: {} recorded outage(s), {} h of them within planned maintenance (not counted, art. 34); \
             {} continuous outage(s) of 120 h or more within the service period, {} compensable day(s) \
             (whole 24 h days), annual usage fee {} of the accounts in force -> compensation {}{}",
            r.contract,
            r.outages,
            format_args!("{:.1}", r.maintenance_excluded_s as f64 / 3600.0),
            r.outages_in_period,
            r.compensable_days,
            yen(r.annual_fee),
            yen(r.compensation),
            r.counted
                .iter()
                .map(|o| format!("; {} .. {}: {} day(s)", time(&o.start), time(&o.end), o.days))
                .collect::<String>()
        )),
        Output::Maintenance(rows) => Text::table(
            &["id", "start", "end", "state", "notice", "reason"],
            rows.iter()
                .map(|w| {
                    vec![
                        w.id.to_string(),
                        time(&w.start),
                        time(&w.end),
                        w.state.clone(),
                        if w.emergency {
                            "emergency: at once".into()
                        } else {
                            format!("{} day(s) ahead", w.notice_days)
                        },
                        w.reason.clone(),
                    ]
                })
                .collect(),
        ),
        Output::OutageRecorded(r) => Text::Message(format!(
            "outage {} of {} {}: {} .. {}",
            r.id,
            r.source,
            r.outcome,
            time(&r.start),
            time(&r.end)
        )),
        Output::Operators(rows) => Text::table(
            &["name", "role", "created"],
            rows.iter()
                .map(|o| vec![o.name.clone(), o.role.as_str().to_string(), time(&o.created)])
                .collect(),
        ),
        Output::Outages(rows) => Text::table(
            &["id", "start", "end", "hours", "note"],
            rows.iter()
                .map(|o| {
                    let hours = o.duration_s as f64 / 3600.0;
                    vec![
                        o.id.to_string(),
                        time(&o.start),
                        time(&o.end),
                        format!("{hours:.1}"),
                        o.note.clone(),
                    ]
                })
                .collect(),
        ),
        Output::Dunning(r) => Text::table(
            &["item", "value"],
            vec![
                vec![
                    "due date (art. 28-3)".into(),
                    format!("end of the month {} month(s) after issue", r.due_months),
                ],
                vec!["reminder".into(), format!("{} day(s) overdue", r.reminder_days)],
                vec![
                    "suspension (art. 23-1(1))".into(),
                    if r.suspend_days == 0 {
                        "never automatically".into()
                    } else {
                        format!("{} day(s) overdue", r.suspend_days)
                    },
                ],
            ],
        ),
        Output::Issuer(i) => Text::table(
            &["item", "value"],
            vec![
                vec!["issuer (発行者)".into(), i.name.clone()],
                vec!["registration number (登録番号)".into(), i.registration_number.clone()],
            ],
        ),
        Output::Ledger(r) => Text::Sections(vec![
            (
                format!("invoices of {} on {}", r.contract, r.today),
                Text::table(
                    &["invoice", "part", "issued", "due", "total", "paid", "settled", "state"],
                    r.invoices
                        .iter()
                        .map(|i| {
                            vec![
                                i.invoice.to_string(),
                                i.part.clone(),
                                i.issued.to_string(),
                                i.due.to_string(),
                                yen(i.total),
                                yen(i.paid),
                                i.settled_on.map(|d| d.to_string()).unwrap_or_default(),
                                i.state.as_str().to_string(),
                            ]
                        })
                        .collect(),
                ),
            ),
            (
                "payments".into(),
                Text::table(
                    &["id", "invoice", "amount", "paid on"],
                    r.payments
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.to_string(),
                                p.invoice.to_string(),
                                yen(p.amount),
                                p.paid_on.to_string(),
                            ]
                        })
                        .collect(),
                ),
            ),
            ("outstanding".into(), Text::Message(yen(r.outstanding))),
        ]),
        Output::Document(d) => Text::Document(d.content.clone()),
        Output::Tariff(t) => Text::table(
            &["item", "value"],
            vec![
                vec!["initial fee per contract".into(), yen(t.initial_fee)],
                vec!["annual usage fee per account".into(), yen(t.annual_fee_per_account)],
                vec![
                    "consumption tax".into(),
                    format!("{}.{:02}%", t.tax_rate_bp / 100, t.tax_rate_bp % 100),
                ],
                vec!["start month free".into(), t.start_month_free.to_string()],
                vec![
                    "option fees (art. 27-1)".into(),
                    t.options
                        .iter()
                        .map(|o| format!("{} {}", o.name, yen(o.amount)))
                        .collect::<Vec<_>>()
                        .join(", "),
                ],
            ],
        ),
    }
}

fn current_term(t: &CurrentTerm) -> String {
    match t {
        CurrentTerm::NotStarted { starts } => format!("starts {starts}"),
        CurrentTerm::Active {
            start,
            end,
            renewal,
            cancellation_deadline,
            renews,
            last_day,
        } => format!(
            "{start} .. {end} (renewal {renewal}), cancellation deadline {cancellation_deadline}{}{}",
            if *renews {
                ", renews automatically"
            } else {
                ", does not renew"
            },
            last_day.map(|d| format!(", ends {d}")).unwrap_or_default()
        ),
        CurrentTerm::Ended { last_day } => format!("ended {last_day}"),
        CurrentTerm::Unknown { error } => format!("cannot be computed: {error}"),
    }
}

fn contract_text(c: &ContractDetails) -> Text {
    let kv = |k: &str, v: String| vec![k.to_string(), v];
    let details = vec![
        kv("name", c.name.clone()),
        kv("kind", c.kind.as_str().into()),
        kv("state", c.state.as_str().into()),
        kv("state reason", c.state_reason.clone().unwrap_or_default()),
        kv("address", c.address.clone()),
        kv("phone", c.phone.clone()),
        kv("department", c.department.clone()),
        kv("sales agent", c.sales_agent.clone().unwrap_or_default()),
        kv("administrator", format!("{} <{}>", c.admin_name, c.admin_email)),
        kv(
            "administrator login",
            c.admin_login.clone().unwrap_or_else(|| "-".into()),
        ),
        kv("accounts", format!("{} of {}", c.accounts_used, c.account_quota)),
        kv("device limit", format!("{} client devices per account", c.device_limit)),
        kv("current term", current_term(&c.current_term)),
        kv(
            "termination scheduled",
            match (&c.termination_scheduled_at, c.termination_on_notice) {
                (Some(t), _) => time(t),
                (None, true) => "five days after its notice is sent (art. 24-3)".into(),
                (None, false) => c
                    .ended_on
                    .map(|d| format!("terminated, last day {d}"))
                    .unwrap_or_else(|| "-".into()),
            },
        ),
    ];
    let terms = c
        .contracts
        .iter()
        .map(|t| {
            vec![
                t.kind.as_str().into(),
                t.start.to_string(),
                t.accounts.to_string(),
                t.first_term_end.to_string(),
            ]
        })
        .collect();
    let history = c
        .history
        .iter()
        .map(|h| vec![time(&h.at), h.by.clone(), h.field.clone(), h.was.clone(), h.now.clone()])
        .collect();
    let mut parts = vec![
        ("contract".to_string(), Text::table(&["field", "value"], details)),
        (
            "basic and additional contracts (art. 12, 13)".to_string(),
            Text::table(&["contract", "start", "accounts", "first term ends"], terms),
        ),
        (
            "changes (art. 16, 17)".to_string(),
            Text::table(&["time", "by", "field", "was", "now"], history),
        ),
    ];
    if let Some(cancel) = &c.cancellation {
        parts.push((
            "cancellation (art. 18)".to_string(),
            Text::Message(format!(
                "received {}, effective at the end of {}, recorded by {}",
                cancel.received, cancel.effective, cancel.recorded_by
            )),
        ));
    }
    Text::Sections(parts)
}

/// Stored text as an operator's terminal may show it (review C9): control characters
/// (C0 with TAB, CR and LF; DEL; C1, which has CSI; ESC) and the bidirectional
/// overrides that reorder what is shown become visible escapes (`\x1b`, `\r`, `\n`,
/// `\t`, `\u{9b}`), so a name or note cannot move the cursor, clear the screen, forge a
/// table row or hide text. Backslashes stay as they are. JSON output needs none of
/// this: serde escapes control characters in strings.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The text `mcvpn admin` prints for people, every field escaped.
pub fn format_text(text: &Text) -> String {
    let mut out = String::new();
    format_into(&mut out, text);
    out
}

fn format_into(out: &mut String, text: &Text) {
    match text {
        Text::Message(text) => {
            out.push_str(&escape_controls(text));
            out.push('\n');
        }
        Text::Table { headers, rows } => format_table(out, headers, rows),
        Text::Document(doc) => {
            // Lines and tabs are the document's; any other control is escaped as in
            // the rest of the output (a customer's name must not drive the terminal).
            for (i, line) in doc.split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let (line, cr) = match line.strip_suffix('\r') {
                    Some(l) => (l, "\r"),
                    None => (line, ""),
                };
                for field in line
                    .split('\t')
                    .map(escape_controls)
                    .collect::<Vec<_>>()
                    .join("\t")
                    .chars()
                {
                    out.push(field);
                }
                out.push_str(cr);
            }
        }
        Text::Sections(parts) => {
            for (i, (title, t)) in parts.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&escape_controls(title));
                out.push_str(":\n");
                format_into(out, t);
            }
        }
    }
}

fn format_table(out: &mut String, headers: &[String], rows: &[Vec<String>]) {
    if rows.is_empty() {
        out.push_str("(none)\n");
        return;
    }
    let escape_row = |r: &[String]| -> Vec<String> { r.iter().map(|c| escape_controls(c).into_owned()).collect() };
    let headers = escape_row(headers);
    let rows: Vec<Vec<String>> = rows.iter().map(|r| escape_row(r.as_slice())).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        out.push_str(s.join("  ").trim_end());
        out.push('\n');
    };
    line(&headers);
    for r in &rows {
        line(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_escaped() {
        assert_eq!(escape_controls("alice"), "alice");
        assert!(matches!(escape_controls("アリス ok\\"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\x1b[2J\r\n\t\x7f\u{9b}\u{202e}z"),
            r"a\x1b[2J\r\n\t\x7f\u{9b}\u{202e}z"
        );
        let table = Text::table(
            &["account", "detail"],
            vec![vec!["\x1b]0;owned\x07".into(), "a\nb".into()]],
        );
        let shown = format_text(&Text::Sections(vec![
            ("t\x1b".into(), table),
            ("m".into(), Text::Message("x\ry".into())),
        ]));
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
        assert_eq!(
            shown,
            "t\\x1b:\naccount           detail\n\\x1b]0;owned\\x07  a\\nb\n\nm:\nx\\ry\n"
        );
    }
}
