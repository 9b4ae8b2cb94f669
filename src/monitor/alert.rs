//! The operator's alert mails: an outage started, an outage ended. Japanese first, then
//! English, plain UTF-8 text, through the hub's SMTP client (`hub::notices::Mailer`).

use chrono::{DateTime, Utc};

use super::outage::Outage;

/// A mail to send: subject and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: String,
    pub body: String,
}

fn jst(t: DateTime<Utc>) -> String {
    t.with_timezone(&crate::contract::operator_tz())
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The hub stopped answering probes.
pub fn started(hub: &str, start: DateTime<Utc>, failures: u32, last_error: &str) -> Alert {
    Alert {
        subject: format!("[mcvpn monitor] 障害発生 / outage started: {hub}"),
        body: format!(
            "mcvpn monitor がハブへの接続試験に {failures} 回続けて失敗しました。サービスの全面停止として扱います。\n\
             \n\
             ハブ: {hub}\n\
             開始（最初に失敗した試験）: {start_local}（{start_utc}）\n\
             最後のエラー: {last_error}\n\
             \n\
             復旧を確認した時点でもう一度お知らせし、停止をハブに記録します（約款第35条）。\n\
             \n\
             ---\n\
             mcvpn monitor: {failures} probes in a row through the hub failed; this is a total outage.\n\
             \n\
             Hub: {hub}\n\
             Start (first failed probe): {start_utc}\n\
             Last error: {last_error}\n\
             \n\
             You will get another mail when a probe passes again; the outage is then recorded on the hub (art. 35).\n",
            start_local = jst(start),
            start_utc = start.to_rfc3339(),
        ),
    }
}

/// The hub answers probes again.
pub fn ended(hub: &str, outage: &Outage) -> Alert {
    let minutes = (outage.end - outage.start).num_seconds() as f64 / 60.0;
    Alert {
        subject: format!("[mcvpn monitor] 復旧 / outage ended: {hub}"),
        body: format!(
            "ハブへの接続試験が再び成功しました。\n\
             \n\
             ハブ: {hub}\n\
             開始: {start_local}（{start_utc}）\n\
             終了（最初に成功した試験）: {end_local}（{end_utc}）\n\
             停止時間: {minutes:.1} 分\n\
             \n\
             この停止はハブに記録されます（mcvpn admin outage list）。\n\
             \n\
             ---\n\
             Probes through the hub pass again.\n\
             \n\
             Hub: {hub}\n\
             Start: {start_utc}\n\
             End (first passing probe): {end_utc}\n\
             Duration: {minutes:.1} min\n\
             \n\
             The outage is recorded on the hub (mcvpn admin outage list).\n",
            start_local = jst(outage.start),
            start_utc = outage.start.to_rfc3339(),
            end_local = jst(outage.end),
            end_utc = outage.end.to_rfc3339(),
        ),
    }
}
