//! Verdicts, rendering in both languages, the report's round trip and its redaction.

use super::*;
use crate::node::proxy::{Proxy, ProxyUrl};

fn check(id: CheckId, finding: Finding) -> CheckResult {
    CheckResult::new(id, finding)
}

fn loss(lost: u32, avg_ms: f64) -> Finding {
    Finding::Loss {
        sent: 50,
        received: 50 - lost,
        loss_pct: f64::from(lost) * 2.0,
        min_ms: 1.0,
        avg_ms,
        max_ms: avg_ms * 2.0,
    }
}

#[test]
fn loss_latency_mtu_and_clock_thresholds() {
    assert_eq!(loss(0, 20.0).verdict(), Verdict::Ok);
    assert_eq!(loss(1, 20.0).verdict(), Verdict::Ok, "one echo in 50 is noise");
    assert_eq!(loss(2, 20.0).verdict(), Verdict::Warning);
    assert_eq!(loss(4, 20.0).verdict(), Verdict::Warning);
    assert_eq!(loss(5, 20.0).verdict(), Verdict::Fail, "10 % breaks TCP in the tunnel");
    assert_eq!(loss(10, 20.0).verdict(), Verdict::Fail);
    assert_eq!(loss(0, 400.0).verdict(), Verdict::Warning, "slow but whole");
    let mtu = |largest| Finding::Mtu {
        largest,
        needed: 1488,
        tunnel_mtu: 1420,
        suggested_mtu: largest - 68,
    };
    assert_eq!(mtu(1500).verdict(), Verdict::Ok);
    assert_eq!(mtu(1488).verdict(), Verdict::Ok);
    assert_eq!(
        mtu(1280).verdict(),
        Verdict::Fail,
        "the data path sets DF: big packets vanish"
    );
    let clock = |skew_ms| Finding::Clock {
        skew_ms,
        source: "udp".into(),
    };
    assert_eq!(clock(-9_000).verdict(), Verdict::Ok);
    assert_eq!(clock(-11_000).verdict(), Verdict::Warning);
    assert_eq!(clock(3_600_000).verdict(), Verdict::Warning);
}

#[test]
fn blocked_udp_is_a_warning_only_when_https_carries_the_vpn() {
    let udp = |https_works, udp_only| Finding::UdpNoAnswer {
        address: "192.0.2.1:51820".into(),
        sent: 8,
        https_works,
        udp_only,
    };
    assert_eq!(udp(true, false).verdict(), Verdict::Warning);
    assert_eq!(
        udp(true, true).verdict(),
        Verdict::Fail,
        "--transport udp cannot fall back"
    );
    assert_eq!(udp(false, false).verdict(), Verdict::Fail);
}

#[test]
fn overall_and_exit_status() {
    let ok = check(CheckId::Root, Finding::Root);
    let skipped = check(CheckId::Mtu, Finding::Skipped { because: CheckId::Udp });
    let warn = check(CheckId::Root, Finding::NotRoot);
    let fail = check(CheckId::Tun, Finding::TunMissing);
    assert_eq!(
        overall(&[ok.clone(), skipped.clone()]),
        Verdict::Ok,
        "skipped does not count"
    );
    assert_eq!(exit_code(overall(std::slice::from_ref(&ok))), 0);
    assert_eq!(exit_code(overall(&[ok.clone(), warn.clone()])), exit::DIAGNOSE_WARNING);
    assert_eq!(exit_code(overall(&[warn, fail, ok, skipped])), exit::DIAGNOSE_FAILED);
    assert_ne!(exit::DIAGNOSE_WARNING, exit::DIAGNOSE_FAILED);
    for code in [exit::FAILURE, exit::USAGE, exit::REFUSED, exit::NOT_ROOT] {
        assert!(code != exit::DIAGNOSE_WARNING && code != exit::DIAGNOSE_FAILED);
    }
}

fn sample_report() -> Report {
    let checks = vec![
        check(
            CheckId::Url,
            Finding::UrlOk {
                host: "vpn.example.com".into(),
                port: 51820,
                https_port: 443,
                keys: 1,
            },
        ),
        check(
            CheckId::Udp,
            Finding::UdpNoAnswer {
                address: "192.0.2.1:51820".into(),
                sent: 8,
                https_works: true,
                udp_only: false,
            },
        ),
        check(
            CheckId::Mtu,
            Finding::Mtu {
                largest: 1280,
                needed: 1488,
                tunnel_mtu: 1420,
                suggested_mtu: 1212,
            },
        ),
        check(CheckId::Loss, loss(10, 30.0)),
        check(CheckId::Clock, Finding::Skipped { because: CheckId::Udp }),
    ];
    let overall = overall(&checks);
    Report {
        version: REPORT_VERSION,
        kind: REPORT_KIND.into(),
        mcvpn_version: "0.1.0".into(),
        system: "Linux 6.1.0 x86_64".into(),
        started_at: "2026-12-04T03:00:00Z".parse().unwrap(),
        finished_at: "2026-12-04T03:00:09Z".parse().unwrap(),
        hub: Some(HubSummary {
            host: "vpn.example.com".into(),
            port: 51820,
            https_port: 443,
        }),
        hub_source: "--server".into(),
        account: Some("alice".into()),
        overall,
        exit_code: exit_code(overall),
        checks,
    }
}

#[test]
fn renders_every_verdict_and_what_to_do_in_both_languages() {
    let report = sample_report();
    let ja = render::render(&report, Lang::Ja);
    assert!(ja.contains("[注意] UDP (中継):"), "{ja}");
    assert!(ja.contains("VPN は HTTPS で動きます"), "{ja}");
    assert!(ja.contains("[異常] 経路 MTU: 1280 バイトまでしか通りません"), "{ja}");
    assert!(ja.contains("sudo mcvpn up --mtu 1212"), "{ja}");
    assert!(
        ja.contains("[異常] パケット損失と遅延: 50 回中 40 回応答、損失 20%"),
        "{ja}"
    );
    assert!(ja.contains("[未実施] 時刻のずれ"), "{ja}");
    assert!(ja.contains("結果: 異常があります"), "{ja}");
    assert!(ja.contains("→ 対処:"), "{ja}");
    let en = render::render(&report, Lang::En);
    assert!(
        en.contains("[warning] UDP (relay): 8 UDP echoes to 192.0.2.1:51820, no answer"),
        "{en}"
    );
    assert!(en.contains("[FAIL] path MTU: only 1280 bytes get through"), "{en}");
    assert!(en.contains("connect with sudo mcvpn up --mtu 1212"), "{en}");
    assert!(
        en.contains("[FAIL] loss and latency: 40 of 50 answered, loss 20 %"),
        "{en}"
    );
    assert!(en.contains("Result: something failed"), "{en}");
    assert!(!en.contains("異常"), "no Japanese in the English text");
    // A healthy line has nothing to do.
    assert_eq!(describe_todo(&Finding::Root), None);
    assert_eq!(describe_todo(&loss(0, 10.0)), None);
    assert!(describe_todo(&Finding::TunMissing).unwrap().contains("modprobe tun"));
}

fn describe_todo(f: &Finding) -> Option<String> {
    render::describe(f, Lang::En).1
}

#[test]
fn the_locale_picks_the_language_as_posix_orders_it() {
    use Lang::*;
    assert_eq!(Lang::from_locale(None, None, Some("ja_JP.UTF-8")), Ja);
    assert_eq!(Lang::from_locale(None, None, Some("en_US.UTF-8")), En);
    assert_eq!(Lang::from_locale(None, None, None), En);
    assert_eq!(
        Lang::from_locale(Some("C"), None, Some("ja_JP.UTF-8")),
        En,
        "LC_ALL first"
    );
    assert_eq!(
        Lang::from_locale(None, Some("ja_JP.UTF-8"), Some("C")),
        Ja,
        "then LC_MESSAGES"
    );
    assert_eq!(
        Lang::from_locale(Some(""), None, Some("ja")),
        Ja,
        "an empty one is unset"
    );
}

#[test]
fn a_report_round_trips_and_other_json_is_refused() {
    let report = sample_report();
    let text = to_json(&report);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["kind"], REPORT_KIND);
    assert_eq!(v["checks"][1]["id"], "udp");
    assert_eq!(v["checks"][1]["verdict"], "warning");
    assert_eq!(v["checks"][1]["finding"], "udp_no_answer");
    assert_eq!(Report::parse(&text).unwrap(), report);
    assert!(matches!(Report::parse("not json"), Err(ReportError::NotJson(_))));
    assert!(matches!(
        Report::parse(r#"{"version": 1, "running": false}"#),
        Err(ReportError::NotAReport(_))
    ));
    let newer = text.replacen("\"version\": 1", "\"version\": 2", 1);
    assert!(matches!(Report::parse(&newer), Err(ReportError::Version(2))));
    let damaged = text.replacen("\"udp_no_answer\"", "\"no_such_finding\"", 1);
    assert!(matches!(Report::parse(&damaged), Err(ReportError::Damaged(_))));
}

#[test]
fn routes_overlapping_the_overlay_are_found_and_ours_are_not() {
    // /proc/net/route on a little-endian host: 100.64.0.0/10 on tailscale0, the default
    // route, a LAN, and our own /32 on mcvpn0.
    let hex = |ip: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(ip));
    let row = |iface: &str, dest: [u8; 4], mask: [u8; 4]| {
        format!(
            "{iface}\t{}\t00000000\t0001\t0\t0\t0\t{}\t0\t0\t0\n",
            hex(dest),
            hex(mask)
        )
    };
    let table = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n".to_string()
        + &row("eth0", [0, 0, 0, 0], [0, 0, 0, 0])
        + &row("eth0", [192, 168, 1, 0], [255, 255, 255, 0])
        + &row("tailscale0", [100, 64, 0, 0], [255, 192, 0, 0])
        + &row("mcvpn0", [100, 64, 0, 7], [255, 255, 255, 255])
        + &row("wwan0", [100, 100, 3, 0], [255, 255, 255, 0])
        + &row("eth1", [100, 128, 0, 0], [255, 192, 0, 0]);
    let overlay = ("100.64.0.0".parse().unwrap(), 10);
    assert_eq!(
        probes::conflicting_routes(&table, overlay, "mcvpn0"),
        vec!["100.64.0.0/10 dev tailscale0", "100.100.3.0/24 dev wwan0"]
    );
    assert!(probes::conflicting_routes("", overlay, "mcvpn0").is_empty());
    assert!(probes::conflicting_routes("header\ngarbage line\n", overlay, "mcvpn0").is_empty());
}

/// The settings a diagnose gets, with a proxy that has a user and a password, against
/// ports where nothing listens (loopback): every check runs and fails fast.
#[test]
fn a_report_holds_no_proxy_password_and_no_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy_password = "proxy-secret-Pa55";
    let hub_key = crate::keys::KeyPair::generate();
    let url = format!(
        "mcvpn://127.0.0.1:{port}/?key={}&https={port}",
        hub_key.public_key32().to_base64()
    );
    let settings = DiagnoseSettings {
        hub: HubUrl::parse(&url).map_err(|e| e.to_string()),
        hub_source: "--server".into(),
        account: Some("alice".into()),
        proxy: Some(Proxy {
            url: ProxyUrl::parse(&format!("http://bob@127.0.0.1:{port}")).unwrap(),
            password: Some(proxy_password.to_string().into()),
        }),
        udp_only: false,
        tunnel_mtu: 1420,
        iface: "mcvpn0".into(),
        overlay: ("100.64.0.0".parse().unwrap(), 10),
        loss_probes: 5,
    };
    let report = run(&settings);
    let text = to_json(&report);
    assert!(!text.contains(proxy_password), "{text}");
    let secret_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, *hub_key.secret_bytes());
    assert!(!text.contains(&secret_b64));
    assert!(!text.contains(&hex::encode(*hub_key.secret_bytes())));
    assert!(!text.contains("key="), "the URL's query is not copied");
    // Nothing listens: TCP refused, UDP silent, HTTPS (through the proxy) failed.
    let verdict = |id| report.checks.iter().find(|c| c.id == id).unwrap().verdict;
    assert_eq!(verdict(CheckId::Url), Verdict::Ok);
    assert_eq!(verdict(CheckId::Tcp), Verdict::Fail);
    assert_eq!(verdict(CheckId::Udp), Verdict::Fail);
    assert_eq!(verdict(CheckId::Https), Verdict::Fail);
    assert_eq!(verdict(CheckId::Mtu), Verdict::Skipped);
    assert_eq!(report.exit_code, exit::DIAGNOSE_FAILED);
}

/// The hub's real relay loop on loopback, as `mcvpn hub` runs it.
fn relay_on_loopback() -> (std::net::SocketAddr, std::sync::Arc<crate::hub::relay::RelayStats>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stats = std::sync::Arc::new(crate::hub::relay::RelayStats::default());
    crate::hub::udp::spawn(
        socket,
        crate::hub::relay::RelayTable::shared(),
        stats.clone(),
        crate::udp_batch::UdpTuning::default(),
    )
    .unwrap();
    (addr, stats)
}

#[test]
fn the_echo_measures_rtt_clock_mtu_and_loss_against_the_real_relay() {
    let (hub, stats) = relay_on_loopback();
    let mut echo = probes::Echo::open(hub).unwrap();
    let first = echo.first_answer(8).expect("the relay answers an echo");
    assert!(first.rtt < std::time::Duration::from_millis(250));
    assert!(
        first.skew_ms.abs() < 1000,
        "same machine, same clock: {}",
        first.skew_ms
    );
    assert_eq!(echo.path_mtu(), Some(1500), "loopback carries the largest size tried");
    match echo.loss(20) {
        Finding::Loss {
            sent,
            received,
            loss_pct,
            ..
        } => {
            assert_eq!((sent, received), (20, 20));
            assert_eq!(loss_pct, 0.0);
        }
        other => panic!("{other:?}"),
    }
    assert!(stats.snapshot().echoes >= 22);
}

#[test]
fn the_relay_answers_an_echo_with_the_same_size_and_within_its_budget() {
    use crate::proto::relay::{parse_echo_reply, write_echo};
    let (hub, stats) = relay_on_loopback();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(hub).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut request = vec![0u8; 1000];
    write_echo(&mut request, 42);
    request[100..].fill(0x77); // padding a reflector would send back
    sock.send(&request).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(n, 1000, "as long as the request, never longer");
    assert_eq!(parse_echo_reply(&buf[..n]).map(|(nonce, _)| nonce), Some(42));
    assert!(buf[24..n].iter().all(|&b| b == 0), "the padding is not reflected");
    // A burst far over the per-source budget: the rest is dropped and counted.
    for i in 0..400 {
        write_echo(&mut request, i);
        sock.send(&request).unwrap();
        if i % 50 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let mut answered = 0;
    while sock.recv(&mut buf).is_ok() {
        answered += 1;
    }
    let s = stats.snapshot();
    assert!(
        answered <= 125,
        "{answered} answers: the burst (120) plus the refill while sending"
    );
    assert!(s.echoes <= 125, "{s:?}");
    assert!(s.echoes_over_budget > 0, "{s:?}");
}
