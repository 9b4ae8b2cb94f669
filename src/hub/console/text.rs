//! The console's words, Japanese first (the administrators are Japanese IT staff),
//! English when the browser prefers it or the person switches.

use crate::admin::api::Output;
use crate::admin::AdminCommand;
use crate::store::ContractField;

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// From a `lang=` cookie or query value, else from `Accept-Language` (its first
    /// language decides; Japanese when there is none).
    pub fn choose(explicit: Option<&str>, accept_language: Option<&str>) -> Lang {
        match explicit {
            Some("en") => return Lang::En,
            Some("ja") => return Lang::Ja,
            _ => {}
        }
        let first = accept_language
            .and_then(|v| v.split(',').next())
            .map(|t| t.trim().to_ascii_lowercase());
        match first {
            Some(t) if t.starts_with("en") => Lang::En,
            _ => Lang::Ja,
        }
    }

    /// One phrase in this language.
    pub fn t(self, ja: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}

/// Thousands separators for counts and yen amounts (`12,345`).
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// What a form's command did, for the next page's flash line; `None` where the admin API's
/// own (English) message is used instead.
pub fn done_words(lang: Lang, cmd: &AdminCommand) -> Option<String> {
    use crate::admin::api::{
        AccountCmd, ContractCmd, DeviceCmd, MaintenanceCmd, OnOff, OutageCmd, SessionCmd, TargetCmd,
    };
    let ja = lang == Lang::Ja;
    Some(match cmd {
        AdminCommand::Account(AccountCmd::Add(n)) if ja => format!("アカウント {} を追加しました。", n.name.user),
        AdminCommand::Account(AccountCmd::Add(n)) => format!("Account {} added.", n.name.user),
        AdminCommand::Account(AccountCmd::Lock { user }) if ja => {
            format!("{user} をロックしました。接続中のセッションは切断しました。")
        }
        AdminCommand::Account(AccountCmd::Lock { user }) => format!("{user} locked; its live sessions were cut."),
        AdminCommand::Account(AccountCmd::Unlock { user }) if ja => format!("{user} のロックを解除しました。"),
        AdminCommand::Account(AccountCmd::Unlock { user }) => format!("{user} unlocked."),
        AdminCommand::Account(AccountCmd::Password { user, .. }) if ja => {
            format!("{user} のパスワードを再設定しました。")
        }
        AdminCommand::Account(AccountCmd::Password { user, .. }) => format!("{user}'s password was reset."),
        AdminCommand::Session(SessionCmd::End { session }) if ja => format!("セッション {session} を切断しました。"),
        AdminCommand::Session(SessionCmd::End { session }) => format!("Session {session} disconnected."),
        AdminCommand::Target(TargetCmd::Grant { target, account }) if ja => {
            format!("{account} に対象機器 {target} への接続を許可しました。")
        }
        AdminCommand::Target(TargetCmd::Grant { target, account }) => {
            format!("{account} may now reach target {target}.")
        }
        AdminCommand::Target(TargetCmd::Revoke { target, account }) if ja => {
            format!("{account} の対象機器 {target} への接続許可を取り消しました。")
        }
        AdminCommand::Target(TargetCmd::Revoke { target, account }) => {
            format!("{account} may no longer reach target {target}.")
        }
        AdminCommand::Device(DeviceCmd::Remove { user, device }) if ja => {
            format!("{user} の手元端末 {device} を削除しました。接続中だった場合は切断しました。")
        }
        AdminCommand::Device(DeviceCmd::Remove { user, device }) => {
            format!("Device {device} of {user} removed; a live session of it was cut.")
        }
        AdminCommand::Account(AccountCmd::Binding { user, state }) => match (ja, state) {
            (true, OnOff::On) => format!("{user} は登録済みの手元端末からのみログインできるようになりました。"),
            (true, OnOff::Off) => format!("{user} はどの端末からでもログインできるようになりました。"),
            (false, OnOff::On) => format!("{user} may now log in only from registered devices."),
            (false, OnOff::Off) => format!("{user} may now log in from any device."),
        },
        AdminCommand::Account(AccountCmd::TotpOn { .. }) => lang
            .t(
                "2段階認証を設定しました。次回のログインからワンタイムコードも入力してください。",
                "Two-step login is on: from the next login, type the one-time code after the password.",
            )
            .to_string(),
        AdminCommand::Account(AccountCmd::TotpOff { .. }) => lang
            .t(
                "2段階認証を解除しました。ログインはパスワードだけになります。",
                "Two-step login is off: logins need only the password.",
            )
            .to_string(),
        AdminCommand::Account(AccountCmd::TotpReset { user }) if ja => {
            format!("{user} の2段階認証をリセットしました。")
        }
        AdminCommand::Account(AccountCmd::TotpReset { user }) => format!("{user}'s two-step login was reset."),
        // The operator's forms. In English the admin API's own sentence says it (with
        // details such as the notice's number), so only Japanese words are here.
        AdminCommand::Contract(ContractCmd::Set { name, field, value }) if ja => {
            format!("{name} の{}を「{value}」に変更しました。", field_words(lang, *field))
        }
        AdminCommand::Contract(ContractCmd::Suspend { name, .. }) if ja => format!(
            "{name} の利用を停止しました（第23条）。接続中のセッションは切断し、ログインは拒否します。アカウント管理者に通知しました。"
        ),
        AdminCommand::Contract(ContractCmd::Resume { name }) if ja => format!("{name} の利用停止を解除しました。"),
        AdminCommand::Contract(ContractCmd::Terminate {
            name,
            notice_undeliverable: true,
            ..
        }) if ja => format!(
            "{name} の契約解除を予定しました。通知の発送から5日後に効力を生じます（第24条第3項）。予定日は契約の画面で確認できます。"
        ),
        AdminCommand::Contract(ContractCmd::Terminate { name, .. }) if ja => {
            format!("{name} の契約を解除しました（第24条）。接続中のセッションは切断しました。")
        }
        AdminCommand::Compensation { contract, send: true, .. } if ja => {
            format!("{contract} の補償額の明細を、アカウント管理者宛ての通知として送信予定に入れました。")
        }
        AdminCommand::Outage(OutageCmd::Add { start, end, .. }) if ja => format!(
            "全面的な停止（{} 〜 {}）を記録しました。",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M")
        ),
        AdminCommand::Maintenance(MaintenanceCmd::Add {
            start,
            end,
            emergency,
            notice_days,
            ..
        }) if ja => format!(
            "保守の予定（{} 〜 {}）を登録しました。アカウント管理者には{}お知らせします。",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M"),
            if *emergency {
                "緊急としてすぐに".to_string()
            } else {
                format!("{notice_days}日前（過ぎていればすぐ）と前日に")
            }
        ),
        AdminCommand::Maintenance(MaintenanceCmd::Cancel { id }) if ja => {
            format!("保守の予定 #{id} を取り消しました。告知済みのアカウント管理者には取消のお知らせを送ります。")
        }
        _ => return None,
    })
}

/// A command's typed answer in Japanese, for the flash line; `None` in English (the admin
/// API's rendering says it) and for answers that are pages, not flash lines.
pub fn result_words(lang: Lang, out: &Output) -> Option<String> {
    if lang != Lang::Ja {
        return None;
    }
    Some(match out {
        Output::ContractAdded(a) => format!(
            "契約 {} を追加しました。{} アカウント、利用開始 {}、最初の契約期間は {} まで、解約の申出期限は {} です。",
            a.contract, a.accounts, a.start, a.first_term_end, a.cancellation_deadline
        ),
        Output::AccountsAdded(a) => format!(
            "{} に {} アカウントを追加しました（{} から、アカウント数の上限は {}）。この追加契約の最初の期間は {} までです。",
            a.contract, a.accounts, a.start, a.account_quota, a.first_term_end
        ),
        Output::CancellationAccepted(c) if c.late => format!(
            "{} の解約を受け付けました（受付日 {}）。ご希望の月末には申出の期限が過ぎているため、サービスは {} に終了します。",
            c.contract, c.received, c.effective
        ),
        Output::CancellationAccepted(c) => format!(
            "{} の解約を受け付けました（受付日 {}）。サービスは {} に終了します。",
            c.contract, c.received, c.effective
        ),
        _ => return None,
    })
}

/// A contract field's name, on the contract page and in the flash line of its change.
pub fn field_words(lang: Lang, f: ContractField) -> &'static str {
    match f {
        ContractField::Name => lang.t("契約者名", "name"),
        ContractField::Address => lang.t("住所", "address"),
        ContractField::Phone => lang.t("電話番号", "phone"),
        ContractField::Department => lang.t("担当部署", "department"),
        ContractField::SalesAgent => lang.t("販売代理店", "sales agent"),
        ContractField::AdminName => lang.t("管理者の氏名", "administrator's name"),
        ContractField::AdminEmail => lang.t("管理者のメールアドレス", "administrator's e-mail"),
        ContractField::DeviceLimit => lang.t("1アカウントの端末数の上限", "devices per account"),
    }
}

/// An audit row's action in words (`login.refused` → ログイン拒否); an action without
/// words here shows as its code, which the CSV always carries.
pub fn action_words(lang: Lang, action: &str) -> Option<&'static str> {
    let (ja, en) = match action {
        "login.accepted" => ("ログイン", "login"),
        "login.refused" => ("ログイン拒否", "login refused"),
        "session.start" => ("接続開始", "session started"),
        "session.end" => ("接続終了", "session ended"),
        "device.registered" => ("端末登録", "device registered"),
        "device.remove" => ("端末削除", "device removed"),
        "device.key" => ("端末鍵登録", "device key registered"),
        "target.enrolled" => ("対象機器登録", "target enrolled"),
        "target.add" => ("対象機器追加", "target added"),
        "target.grant" => ("接続許可", "access granted"),
        "target.revoke" => ("接続許可の取消", "access revoked"),
        "account.add" => ("アカウント追加", "account added"),
        "account.lock" => ("アカウントロック", "account locked"),
        "account.unlock" => ("ロック解除", "account unlocked"),
        "account.password-reset" => ("パスワード再設定", "password reset"),
        "account.password-change" => ("パスワード変更", "password changed"),
        "account.bind" => ("端末の事前登録", "device bound"),
        "account.binding" => ("端末認証の設定", "device binding set"),
        "account.totp-on" => ("2段階認証の設定", "two-step login on"),
        "account.totp-off" => ("2段階認証の解除", "two-step login off"),
        "account.totp-reset" => ("2段階認証のリセット", "two-step login reset"),
        "admin.login" => ("管理者ログイン", "administrator login"),
        "admin.login-refused" => ("管理者ログイン拒否", "administrator login refused"),
        "admin.denied" => ("権限のない操作", "action not allowed"),
        "contract.add" => ("契約", "contract added"),
        "contract.additional" => ("追加契約", "additional contract"),
        "contract.change" => ("契約内容の変更", "contract changed"),
        "contract.admin" => ("アカウント管理者の指定", "administrator named"),
        "contract.suspend" => ("利用停止", "suspended"),
        "contract.resume" => ("利用再開", "resumed"),
        "contract.cancel" | "contract.cancelled" => ("解約", "cancellation"),
        "contract.terminate" | "contract.terminate-scheduled" | "contract.terminated" => ("契約解除", "termination"),
        "maintenance.add" => ("保守の予定", "maintenance planned"),
        "maintenance.cancel" => ("保守の取消", "maintenance cancelled"),
        "outage.add" | "outage.record" => ("障害の記録", "outage recorded"),
        _ => return None,
    };
    Some(lang.t(ja, en))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_choice_and_grouping() {
        assert_eq!(Lang::choose(None, None), Lang::Ja);
        assert_eq!(Lang::choose(None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::choose(None, Some("ja,en;q=0.5")), Lang::Ja);
        assert_eq!(Lang::choose(Some("ja"), Some("en")), Lang::Ja);
        assert_eq!(Lang::choose(Some("en"), None), Lang::En);
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(-1000), "-1,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(action_words(Lang::Ja, "login.refused"), Some("ログイン拒否"));
        assert_eq!(action_words(Lang::En, "session.end"), Some("session ended"));
        assert_eq!(action_words(Lang::Ja, "something.new"), None);
        assert_eq!(
            action_words(Lang::Ja, "account.totp-reset"),
            Some("2段階認証のリセット")
        );
    }

    /// The operator's forms answer in Japanese too; in English the admin API's sentence
    /// (with its details) stays.
    #[test]
    fn operator_actions_have_japanese_flash_lines() {
        use crate::admin::api::{CancellationAccepted, ContractAdded, ContractCmd, OutageCmd};
        let d = |m, day| chrono::NaiveDate::from_ymd_opt(2027, m, day).unwrap();
        let suspend = AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "未払い".into(),
        });
        assert!(done_words(Lang::Ja, &suspend)
            .unwrap()
            .contains("acme の利用を停止しました（第23条）"));
        assert_eq!(done_words(Lang::En, &suspend), None);
        let set = AdminCommand::Contract(ContractCmd::Set {
            name: "acme".into(),
            field: ContractField::Phone,
            value: "03-1234-5678".into(),
        });
        assert_eq!(
            done_words(Lang::Ja, &set).unwrap(),
            "acme の電話番号を「03-1234-5678」に変更しました。"
        );
        let scheduled = AdminCommand::Contract(ContractCmd::Terminate {
            name: "acme".into(),
            reason: "第22条違反".into(),
            notice_undeliverable: true,
        });
        assert!(done_words(Lang::Ja, &scheduled)
            .unwrap()
            .contains("5日後に効力を生じます"));
        let outage = AdminCommand::Outage(OutageCmd::Add {
            start: d(3, 1).and_hms_opt(0, 0, 0).unwrap(),
            end: d(3, 6).and_hms_opt(12, 0, 0).unwrap(),
            note: String::new(),
        });
        assert_eq!(
            done_words(Lang::Ja, &outage).unwrap(),
            "全面的な停止（2027-03-01 00:00 〜 2027-03-06 12:00）を記録しました。"
        );

        let added = Output::ContractAdded(ContractAdded {
            contract: "acme".into(),
            accounts: 10,
            start: d(4, 1),
            first_term_end: d(12, 31),
            cancellation_deadline: d(11, 30),
        });
        let said = result_words(Lang::Ja, &added).unwrap();
        assert!(
            said.contains("契約 acme を追加しました") && said.contains("2027-12-31 まで"),
            "{said}"
        );
        assert_eq!(result_words(Lang::En, &added), None);
        let late = Output::CancellationAccepted(CancellationAccepted {
            contract: "acme".into(),
            received: d(12, 10),
            requested_end: Some(d(12, 31)),
            effective: d(1, 31),
            late: true,
        });
        assert!(result_words(Lang::Ja, &late)
            .unwrap()
            .contains("申出の期限が過ぎている"));
        assert_eq!(result_words(Lang::Ja, &Output::Message("x".into())), None);
    }
}
