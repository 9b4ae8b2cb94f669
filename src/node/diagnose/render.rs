//! The words of `mcvpn diagnose` and `mcvpn admin diagnose-report`: for each check a
//! title, for each finding what was seen and what to do, in Japanese or English. Pure:
//! from a [`Report`] to text.

use super::{CheckId, CheckResult, Finding, Report, Verdict};

/// The language of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// The language the locale asks for, as POSIX orders the variables: `LC_ALL`, then
    /// `LC_MESSAGES`, then `LANG` (the first one set and not empty decides); Japanese
    /// when it starts with `ja`, English otherwise.
    pub fn from_locale(lc_all: Option<&str>, lc_messages: Option<&str>, lang: Option<&str>) -> Lang {
        let chosen = [lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .find(|v| !v.is_empty());
        match chosen {
            Some(v) if v.starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        }
    }
}

fn pick(lang: Lang, ja: String, en: String) -> String {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

pub fn verdict_label(v: Verdict, lang: Lang) -> &'static str {
    match (v, lang) {
        (Verdict::Ok, Lang::Ja) => "正常",
        (Verdict::Warning, Lang::Ja) => "注意",
        (Verdict::Fail, Lang::Ja) => "異常",
        (Verdict::Skipped, Lang::Ja) => "未実施",
        (Verdict::Ok, Lang::En) => "ok",
        (Verdict::Warning, Lang::En) => "warning",
        (Verdict::Fail, Lang::En) => "FAIL",
        (Verdict::Skipped, Lang::En) => "skipped",
    }
}

pub fn title(id: CheckId, lang: Lang) -> &'static str {
    match (id, lang) {
        (CheckId::Url, Lang::Ja) => "サーバー URL と鍵",
        (CheckId::Dns, Lang::Ja) => "名前解決",
        (CheckId::Tcp, Lang::Ja) => "TCP (制御用ポート)",
        (CheckId::Udp, Lang::Ja) => "UDP (中継)",
        (CheckId::Https, Lang::Ja) => "HTTPS (プロキシ経由を含む)",
        (CheckId::Mtu, Lang::Ja) => "経路 MTU",
        (CheckId::Loss, Lang::Ja) => "パケット損失と遅延",
        (CheckId::Root, Lang::Ja) => "管理者権限",
        (CheckId::Tun, Lang::Ja) => "TUN デバイス",
        (CheckId::Routes, Lang::Ja) => "経路の衝突",
        (CheckId::Clock, Lang::Ja) => "時刻のずれ",
        (CheckId::Url, Lang::En) => "server URL and key",
        (CheckId::Dns, Lang::En) => "name resolution",
        (CheckId::Tcp, Lang::En) => "TCP (control port)",
        (CheckId::Udp, Lang::En) => "UDP (relay)",
        (CheckId::Https, Lang::En) => "HTTPS (and proxy)",
        (CheckId::Mtu, Lang::En) => "path MTU",
        (CheckId::Loss, Lang::En) => "loss and latency",
        (CheckId::Root, Lang::En) => "root",
        (CheckId::Tun, Lang::En) => "TUN device",
        (CheckId::Routes, Lang::En) => "route conflicts",
        (CheckId::Clock, Lang::En) => "clock skew",
    }
}

fn via(proxy: &Option<String>, lang: Lang) -> String {
    match (proxy, lang) {
        (Some(p), Lang::Ja) => format!(" (プロキシ {p} 経由)"),
        (Some(p), Lang::En) => format!(" (through the proxy {p})"),
        (None, _) => String::new(),
    }
}

/// What was seen, and what to do about it (None when nothing needs doing).
pub fn describe(finding: &Finding, lang: Lang) -> (String, Option<String>) {
    use Finding::*;
    let l = lang;
    match finding {
        UrlOk {
            host,
            port,
            https_port,
            keys,
        } => (
            pick(
                l,
                format!("{host} ポート {port} (HTTPS {https_port})、ハブの公開鍵 {keys} 個、形式は正しい"),
                format!("{host} port {port} (HTTPS {https_port}), {keys} hub key(s), well formed"),
            ),
            None,
        ),
        NoUrl => (
            pick(l, "サーバー URL がありません".into(), "no server URL".into()),
            Some(pick(
                l,
                "運用者から受け取った URL を --server 'mcvpn://…' で指定してください".into(),
                "give the URL from your operator: --server 'mcvpn://…'".into(),
            )),
        ),
        UrlInvalid { error } => (
            pick(l, format!("URL が正しくありません: {error}"), format!("the URL is not valid: {error}")),
            Some(pick(
                l,
                "運用者から受け取った URL を省略せずにそのまま貼り付けてください (key= を含む)".into(),
                "paste the whole URL your operator gave you, key= included".into(),
            )),
        ),
        AddressLiteral { address } => (
            pick(l, format!("IP アドレス {address} (名前解決は不要)"), format!("IP address {address} (no lookup needed)")),
            None,
        ),
        Resolved { addresses, ms } => (
            pick(
                l,
                format!("{} ({ms} ms)", addresses.join(", ")),
                format!("{} ({ms} ms)", addresses.join(", ")),
            ),
            None,
        ),
        ResolveFailed { error } => (
            pick(l, format!("名前を引けません: {error}"), format!("the name does not resolve: {error}")),
            Some(pick(
                l,
                "インターネットにつながっているか、DNS の設定 (/etc/resolv.conf) とホスト名の綴りを確かめてください".into(),
                "check that you are online, your DNS settings (/etc/resolv.conf) and the host name's spelling".into(),
            )),
        ),
        TcpConnected { address, ms } => (
            pick(l, format!("{address} に接続できた ({ms} ms)"), format!("connected to {address} ({ms} ms)")),
            None,
        ),
        TcpRefused { address } => (
            pick(
                l,
                format!("{address} が接続を拒否しました (待ち受けていません)"),
                format!("{address} refused the connection (nothing listens there)"),
            ),
            Some(pick(
                l,
                "ハブが停止しているか、URL のポートが違います。URL を確かめ、運用者の障害情報を確認してください".into(),
                "the hub is down or the URL's port is wrong: check the URL and your operator's service status".into(),
            )),
        ),
        TcpTimeout { address, secs } => (
            pick(
                l,
                format!("{address} から {secs} 秒以内に応答がありません"),
                format!("no answer from {address} within {secs} s"),
            ),
            Some(pick(
                l,
                "ファイアウォールが TCP を止めているか、ハブに届きません。社内ネットワークならネットワーク管理者にこのポートの許可を依頼してください".into(),
                "a firewall blocks TCP or the hub is unreachable; on a company network ask its administrator to allow this port".into(),
            )),
        ),
        TcpError { address, error } => (
            pick(l, format!("{address} に接続できません: {error}"), format!("cannot connect to {address}: {error}")),
            Some(pick(
                l,
                "ネットワーク接続 (LAN ケーブル、Wi-Fi、既定の経路) を確かめてください".into(),
                "check your network connection (cable, Wi-Fi, default route)".into(),
            )),
        ),
        UdpAnswered { address, rtt_ms } => (
            pick(
                l,
                format!("{address} の中継が応答しました ({rtt_ms} ms)"),
                format!("the relay at {address} answered ({rtt_ms} ms)"),
            ),
            None,
        ),
        UdpNoAnswer {
            address,
            sent,
            https_works,
            udp_only,
        } => {
            let seen = pick(
                l,
                format!("{address} へ UDP で {sent} 回問い合わせ、応答なし"),
                format!("{sent} UDP echoes to {address}, no answer"),
            );
            let todo = if *udp_only {
                pick(
                    l,
                    "UDP がふさがれています。--transport udp をやめて自動 (auto) にすると HTTPS で接続できます".into(),
                    "UDP is blocked: drop --transport udp (use auto) to connect over HTTPS".into(),
                )
            } else if *https_works {
                pick(
                    l,
                    "UDP がふさがれています。VPN は HTTPS で動きますが遅くなります。速度が必要ならネットワーク管理者に UDP の許可を依頼してください".into(),
                    "UDP is blocked: the VPN runs over HTTPS instead, slower; for full speed ask the network's administrator to allow this UDP port".into(),
                )
            } else {
                pick(
                    l,
                    "UDP も HTTPS も届きません。ハブが停止しているか、ネットワークがふさいでいます".into(),
                    "neither UDP nor HTTPS gets through: the hub is down or the network blocks it".into(),
                )
            };
            (seen, Some(todo))
        }
        HttpsOk { address, proxy, ms } => (
            pick(
                l,
                format!("{address}{} が応答しました ({ms} ms)", via(proxy, l)),
                format!("{address}{} answered ({ms} ms)", via(proxy, l)),
            ),
            None,
        ),
        HttpsStatus { address, proxy, status } => (
            pick(
                l,
                format!("{address}{} が HTTP {status} を返しました", via(proxy, l)),
                format!("{address}{} answered HTTP {status}", via(proxy, l)),
            ),
            Some(pick(
                l,
                "URL の https= のポートが mcvpn のハブか確かめてください".into(),
                "check that the URL's https= port is the mcvpn hub's".into(),
            )),
        ),
        HttpsFailed { address, proxy, error } => (
            pick(
                l,
                format!("{address}{} に接続できません: {error}", via(proxy, l)),
                format!("cannot reach {address}{}: {error}", via(proxy, l)),
            ),
            Some(match proxy {
                Some(_) => pick(
                    l,
                    "プロキシの設定 (--proxy、HTTPS_PROXY、パスワード) を確かめてください".into(),
                    "check the proxy settings (--proxy, HTTPS_PROXY, its password)".into(),
                ),
                None => pick(
                    l,
                    "ハブが停止しているか、ネットワークが HTTPS をふさいでいます。社内でプロキシが必須なら --proxy を指定してください".into(),
                    "the hub is down or the network blocks HTTPS; if your network requires a proxy, give --proxy".into(),
                ),
            }),
        ),
        Mtu {
            largest,
            needed,
            tunnel_mtu,
            suggested_mtu: suggest,
        } => {
            if largest >= needed {
                (
                    pick(
                        l,
                        format!("{largest} バイトまで通過 (トンネル MTU {tunnel_mtu} に必要なのは {needed} バイト)"),
                        format!("{largest} bytes get through (the tunnel's MTU {tunnel_mtu} needs {needed})"),
                    ),
                    None,
                )
            } else {
                (
                    pick(
                        l,
                        format!("{largest} バイトまでしか通りません (トンネル MTU {tunnel_mtu} には {needed} バイト必要)"),
                        format!("only {largest} bytes get through (the tunnel's MTU {tunnel_mtu} needs {needed})"),
                    ),
                    Some(pick(
                        l,
                        format!("大きなパケットが届きません。sudo mcvpn up --mtu {suggest} で接続してください"),
                        format!("large packets are lost: connect with sudo mcvpn up --mtu {suggest}"),
                    )),
                )
            }
        }
        MtuUnknown { needed } => (
            pick(
                l,
                format!("どの大きさの試験パケットも戻りません (必要 {needed} バイト)"),
                format!("no probe size came back (the tunnel needs {needed} bytes)"),
            ),
            Some(pick(
                l,
                "回線が不安定です。しばらくしてからもう一度実行してください".into(),
                "the line is unstable: run diagnose again in a while".into(),
            )),
        ),
        Loss {
            sent,
            received,
            loss_pct,
            min_ms,
            avg_ms,
            max_ms,
        } => {
            let seen = pick(
                l,
                format!("{sent} 回中 {received} 回応答、損失 {loss_pct}%、往復 最小/平均/最大 {min_ms}/{avg_ms}/{max_ms} ms"),
                format!("{received} of {sent} answered, loss {loss_pct} %, round trip min/avg/max {min_ms}/{avg_ms}/{max_ms} ms"),
            );
            let todo = match finding.verdict() {
                Verdict::Ok => None,
                _ if *loss_pct > super::LOSS_OK_PCT => Some(pick(
                    l,
                    "回線でパケットが失われています。有線接続や別の回線で試し、続くならプロバイダーかネットワーク管理者に相談してください".into(),
                    "the line loses packets: try a wired connection or another line; if it persists ask your provider or network administrator".into(),
                )),
                _ => Some(pick(
                    l,
                    "遅延が大きいため操作が重く感じられます。別の回線で試してください".into(),
                    "the round trip is long, remote work will feel slow: try another line".into(),
                )),
            };
            (seen, todo)
        }
        Root => (pick(l, "root で実行中".into(), "running as root".into()), None),
        NotRoot => (
            pick(l, "root ではありません".into(), "not running as root".into()),
            Some(pick(
                l,
                "mcvpn up は sudo が必要です。すべてを確かめるには sudo mcvpn diagnose を実行してください".into(),
                "mcvpn up needs sudo; run sudo mcvpn diagnose to check everything".into(),
            )),
        ),
        TunOk { opened } => (
            pick(
                l,
                if *opened {
                    "/dev/net/tun を開けました".into()
                } else {
                    "/dev/net/tun があります (root でないため開いていません)".into()
                },
                if *opened {
                    "/dev/net/tun opens".into()
                } else {
                    "/dev/net/tun exists (not opened: not root)".into()
                },
            ),
            None,
        ),
        TunMissing => (
            pick(l, "/dev/net/tun がありません".into(), "/dev/net/tun is missing".into()),
            Some(pick(
                l,
                "sudo modprobe tun を実行してください (コンテナ内ならホスト側で TUN を許可してください)".into(),
                "run sudo modprobe tun (in a container, allow TUN on the host)".into(),
            )),
        ),
        TunNotDevice => (
            pick(
                l,
                "/dev/net/tun がデバイスではありません".into(),
                "/dev/net/tun is not a device".into(),
            ),
            Some(pick(
                l,
                "sudo rm /dev/net/tun && sudo modprobe tun で作り直してください".into(),
                "recreate it: sudo rm /dev/net/tun && sudo modprobe tun".into(),
            )),
        ),
        TunOpenFailed { error } => (
            pick(l, format!("/dev/net/tun を開けません: {error}"), format!("cannot open /dev/net/tun: {error}")),
            Some(pick(
                l,
                "sudo で実行し、コンテナ内ならホスト側で TUN を許可してください".into(),
                "run with sudo; in a container, allow TUN on the host".into(),
            )),
        ),
        RoutesClear { overlay } => (
            pick(
                l,
                format!("VPN のアドレス帯 {overlay} と重なる経路はありません"),
                format!("no route overlaps the VPN's network {overlay}"),
            ),
            None,
        ),
        RouteConflict { overlay, routes } => (
            pick(
                l,
                format!("VPN のアドレス帯 {overlay} と重なる経路: {}", routes.join("; ")),
                format!("routes overlapping the VPN's network {overlay}: {}", routes.join("; ")),
            ),
            Some(pick(
                l,
                "他の VPN (例: Tailscale) や回線がこのアドレス帯を使っています。それを止めるか、運用者に連絡してください".into(),
                "another VPN (Tailscale, for one) or your line uses this network: stop it, or tell your operator".into(),
            )),
        ),
        RoutesUnreadable { error } => (
            pick(
                l,
                format!("経路表を読めません: {error}"),
                format!("cannot read the routing table: {error}"),
            ),
            None,
        ),
        Clock { skew_ms, source } => {
            let secs = *skew_ms as f64 / 1000.0;
            let seen = pick(
                l,
                format!("ハブとの時刻差 {secs:+.1} 秒 ({source} で測定)"),
                format!("{secs:+.1} s from the hub's clock (measured over {source})"),
            );
            let todo = (finding.verdict() != Verdict::Ok).then(|| {
                pick(
                    l,
                    "時刻を合わせてください: sudo timedatectl set-ntp true".into(),
                    "set the clock right: sudo timedatectl set-ntp true".into(),
                )
            });
            (seen, todo)
        }
        Skipped { because } => (
            pick(
                l,
                format!("「{}」が通らないため実施しませんでした", title(*because, l)),
                format!("not run: \"{}\" did not pass", title(*because, l)),
            ),
            None,
        ),
    }
}

/// One check as lines of text.
fn check_lines(c: &CheckResult, lang: Lang, out: &mut String) {
    let (seen, todo) = describe(&c.finding, lang);
    let label = verdict_label(c.verdict, lang);
    out.push_str(&format!("[{label}] {}: {seen}\n", title(c.id, lang)));
    if let Some(todo) = todo {
        let arrow = match lang {
            Lang::Ja => "対処",
            Lang::En => "do",
        };
        out.push_str(&format!("        → {arrow}: {todo}\n"));
    }
}

/// The whole report as text, for the user's terminal or the operator's.
pub fn render(report: &Report, lang: Lang) -> String {
    let mut out = String::new();
    let hub = report
        .hub
        .as_ref()
        .map(|h| format!("{}:{}", h.host, h.port))
        .unwrap_or_else(|| "-".into());
    let at = report
        .started_at
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %:z");
    out.push_str(&match lang {
        Lang::Ja => format!(
            "mcvpn 接続診断 ({}) ハブ {hub}、{at}、mcvpn {}、{}\n",
            report.hub_source, report.mcvpn_version, report.system
        ),
        Lang::En => format!(
            "mcvpn diagnose ({}) hub {hub}, {at}, mcvpn {}, {}\n",
            report.hub_source, report.mcvpn_version, report.system
        ),
    });
    for c in &report.checks {
        check_lines(c, lang, &mut out);
    }
    out.push_str(&match (report.overall, lang) {
        (Verdict::Ok | Verdict::Skipped, Lang::Ja) => "結果: 問題は見つかりませんでした。\n".to_string(),
        (Verdict::Warning, Lang::Ja) => "結果: 注意があります。接続はできますが、上の対処をお勧めします。\n".to_string(),
        (Verdict::Fail, Lang::Ja) => "結果: 異常があります。上の対処をしても直らない場合は、--report で保存したファイルを運用者に送ってください。\n".to_string(),
        (Verdict::Ok | Verdict::Skipped, Lang::En) => "Result: no problem found.\n".to_string(),
        (Verdict::Warning, Lang::En) => "Result: warnings. The VPN should work; the steps above would make it better.\n".to_string(),
        (Verdict::Fail, Lang::En) => "Result: something failed. If the steps above do not help, send the file written by --report to your operator.\n".to_string(),
    });
    out
}
