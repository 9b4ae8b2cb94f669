//! The store's behaviour, the same on both backends: every test here runs once on an
//! in-memory SQLite store and once on a fresh PostgreSQL schema (`MCVPN_TEST_PG`, see
//! `pg_test`); backend-specific tests live beside each backend.

use std::net::Ipv4Addr;

use super::pg_test::both_backends;
use super::*;

fn with_account(s: &mut dyn Store) -> AccountRecord {
    s.contract_add(&NewContract::simple("acme", 10)).unwrap();
    s.account_add("acme", "alice", "hash").unwrap()
}

both_backends!(
    accounts_and_devices,
    other_accounts_are_not_peers,
    overlay_allocation_fills_gaps_when_full,
    sessions_open_and_close,
    the_sessions_of_a_silent_hub_are_closed_and_a_live_hubs_are_not,
    a_lease_has_one_holder_until_it_expires,
    remote_sessions_are_the_open_sessions_of_the_other_live_hubs_in_the_mesh,
    grants_extend_peers_both_ways,
    contract_changes_are_recorded_with_who_and_when,
    additional_terms_cancellation_notices_settings,
    client_devices_are_limited_per_account,
    atomically_commits_or_leaves_nothing,
    operator_logins_are_apart_from_accounts,
    an_outage_is_recorded_once_per_source_and_start,
    a_second_factor_step_is_accepted_once_and_never_an_older_one,
);

fn accounts_and_devices(s: &mut dyn Store) {
    let alice = with_account(s);
    assert_eq!(alice.contract, "acme");
    assert!(matches!(
        s.account_add("acme", "alice", "h"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.account_add("nope", "bob", "h"),
        Err(StoreError::NotFound(_))
    ));
    let net = OverlayNet::default();
    let t = s
        .device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let c = s
        .device_register(alice.id, Role::Client, &Key32([2; 32]), "laptop", net)
        .unwrap();
    assert_eq!(t.overlay_ip, Ipv4Addr::new(100, 64, 0, 1));
    assert_eq!(c.overlay_ip, Ipv4Addr::new(100, 64, 0, 2));
    assert!(matches!(
        s.device_register(alice.id, Role::Target, &Key32([1; 32]), "again", net),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.authorised_peers(&c).unwrap(), vec![t.clone()]);
    assert_eq!(s.authorised_peers(&t).unwrap(), vec![c.clone()]);
    assert_eq!(s.device_by_key(&Key32([1; 32]), Role::Target, None).unwrap(), Some(t));
    assert_eq!(s.device_by_key(&Key32([2; 32]), Role::Target, None).unwrap(), None);
}

fn other_accounts_are_not_peers(s: &mut dyn Store) {
    let alice = with_account(s);
    let bob = s.account_add("acme", "bob", "h").unwrap();
    let net = OverlayNet::default();
    s.device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let bob_laptop = s
        .device_register(bob.id, Role::Client, &Key32([3; 32]), "b", net)
        .unwrap();
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
}

fn overlay_allocation_fills_gaps_when_full(s: &mut dyn Store) {
    let alice = with_account(s);
    let net = OverlayNet::parse("10.9.0.0/30").unwrap(); // two host addresses
    let a = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", net)
        .unwrap();
    let _b = s
        .device_register(alice.id, Role::Client, &Key32([2; 32]), "b", net)
        .unwrap();
    assert!(matches!(
        s.device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net),
        Err(StoreError::Refused(m)) if m.contains("no free address")
    ));
    s.device_remove(a.id).unwrap();
    let c = s
        .device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net)
        .unwrap();
    assert_eq!(c.overlay_ip, Ipv4Addr::new(10, 9, 0, 1));
}

fn sessions_open_and_close(s: &mut dyn Store) {
    let alice = with_account(s);
    let d = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", OverlayNet::default())
        .unwrap();
    let id = s.session_start(d.id, "192.0.2.1:5000", "hub-a", 0).unwrap();
    assert_eq!(s.sessions(true, None).unwrap().len(), 1);
    assert_eq!(s.sessions(true, None).unwrap()[0].hub, "hub-a");
    s.session_end(id, "logout", 10, 20).unwrap();
    assert!(s.sessions(true, None).unwrap().is_empty());
    s.session_start(d.id, "x", "hub-a", 0).unwrap();
    s.session_start(d.id, "y", "hub-b", 0).unwrap();
    // A hub restarting closes its own leftovers, never another hub's live sessions.
    assert_eq!(s.sessions_close_stale("hub restarted", "hub-a").unwrap(), 1);
    let open = s.sessions(true, None).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].hub, "hub-b");
}

fn the_sessions_of_a_silent_hub_are_closed_and_a_live_hubs_are_not(s: &mut dyn Store) {
    let alice = with_account(s);
    let d = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", OverlayNet::default())
        .unwrap();
    s.hub_heartbeat("hub-a", 1_000, "").unwrap();
    s.hub_heartbeat("hub-b", 1_000, "").unwrap();
    s.session_start(d.id, "x", "hub-a", 0).unwrap();
    s.session_start(d.id, "y", "hub-b", 0).unwrap();
    s.hub_heartbeat("hub-b", 1_020, "").unwrap(); // hub-a died at 1_000
    assert_eq!(
        s.sessions_close_of_silent_hubs("hub stopped answering", 1_010).unwrap(),
        1
    );
    let open = s.sessions(true, None).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].hub, "hub-b");
    assert_eq!(
        s.sessions_close_of_silent_hubs("hub stopped answering", 1_010).unwrap(),
        0
    );
}

fn remote_sessions_are_the_open_sessions_of_the_other_live_hubs_in_the_mesh(s: &mut dyn Store) {
    let alice = with_account(s);
    let mut dev = |k: u8| {
        s.device_register(
            alice.id,
            Role::Client,
            &Key32([k; 32]),
            &format!("d{k}"),
            OverlayNet::default(),
        )
        .unwrap()
        .id
    };
    let (d1, d2, d3, d4) = (dev(1), dev(2), dev(3), dev(4));
    s.hub_heartbeat("hub-a", 1_000, "192.0.2.1:51820").unwrap();
    s.hub_heartbeat("hub-b", 1_000, "192.0.2.11:51820").unwrap();
    s.hub_heartbeat("hub-c", 900, "192.0.2.12:51820").unwrap(); // silent
    s.hub_heartbeat("hub-d", 1_000, "").unwrap(); // not in the mesh
    s.session_start(d1, "x", "hub-a", 11).unwrap();
    s.session_start(d2, "x", "hub-b", u64::MAX).unwrap();
    s.session_start(d3, "x", "hub-c", 33).unwrap();
    s.session_start(d4, "x", "hub-d", 44).unwrap();
    let ended = s.session_start(d2, "x", "hub-b", 23).unwrap();
    s.session_end(ended, "gone", 0, 0).unwrap();
    let remote = s.remote_sessions("hub-a", 950).unwrap();
    assert_eq!(
        remote,
        vec![RemoteSession {
            device_id: d2,
            boot_id: u64::MAX,
            relay_addr: "192.0.2.11:51820".into()
        }]
    );
}

fn a_lease_has_one_holder_until_it_expires(s: &mut dyn Store) {
    with_account(s);
    assert!(s.lease_take("jobs", "hub-a", 1_000, 30).unwrap());
    assert!(
        !s.lease_take("jobs", "hub-b", 1_010, 30).unwrap(),
        "hub-a holds it until 1030"
    );
    assert!(s.lease_take("jobs", "hub-a", 1_020, 30).unwrap(), "the holder renews");
    assert!(!s.lease_take("jobs", "hub-b", 1_049, 30).unwrap(), "renewed until 1050");
    assert!(
        s.lease_take("jobs", "hub-b", 1_051, 30).unwrap(),
        "expired: another takes it"
    );
    assert!(!s.lease_take("jobs", "hub-a", 1_052, 30).unwrap());
    assert!(s.lease_take("other", "hub-a", 1_052, 30).unwrap(), "leases are by name");
    assert_eq!(s.lease_holder("jobs").unwrap().as_deref(), Some("hub-b"));
    assert!(
        !s.lease_release("jobs", "hub-a").unwrap(),
        "only the holder gives it up"
    );
    assert!(s.lease_release("jobs", "hub-b").unwrap());
    assert_eq!(s.lease_holder("jobs").unwrap(), None);
    assert!(
        s.lease_take("jobs", "hub-a", 1_053, 30).unwrap(),
        "free at once after the release"
    );
}

fn grants_extend_peers_both_ways(s: &mut dyn Store) {
    let alice = with_account(s);
    let bob = s.account_add("acme", "bob", "h").unwrap();
    let net = OverlayNet::default();
    let pc = s
        .device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let bob_laptop = s
        .device_register(bob.id, Role::Client, &Key32([3; 32]), "b", net)
        .unwrap();
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
    s.grant_add(pc.id, bob.id).unwrap();
    assert_eq!(s.authorised_peers(&bob_laptop).unwrap(), vec![pc.clone()]);
    assert_eq!(s.authorised_peers(&pc).unwrap(), vec![bob_laptop.clone()]);
    assert_eq!(s.grants(Some(alice.contract_id)).unwrap().len(), 1);
    assert!(s.grant_remove(pc.id, bob.id).unwrap());
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
}

fn contract_changes_are_recorded_with_who_and_when(s: &mut dyn Store) {
    let c = s.contract_add(&NewContract::simple("acme", 5)).unwrap();
    assert_eq!(s.terms(c.id).unwrap().len(), 1);
    let old = s
        .contract_update(c.id, ContractField::Address, "1-1 Chiyoda", "operator")
        .unwrap();
    assert_eq!(old, "");
    s.contract_update(c.id, ContractField::AdminEmail, "it@acme.example", "operator")
        .unwrap();
    let h = s.contract_history(c.id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].field.as_str(), h[0].new_value.as_str(), h[0].actor.as_str()),
        ("address", "1-1 Chiyoda", "operator")
    );
    assert_eq!(s.contract_by_id(c.id).unwrap().admin_email, "it@acme.example");
    s.contract_add(&NewContract::simple("globex", 5)).unwrap();
    assert!(matches!(
        s.contract_update(c.id, ContractField::Name, "globex", "operator"),
        Err(StoreError::Conflict(_))
    ));
}

fn additional_terms_cancellation_notices_settings(s: &mut dyn Store) {
    let c = s.contract_add(&NewContract::simple("acme", 5)).unwrap();
    let d = chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
    s.term_add(c.id, d, 3).unwrap();
    let terms = s.terms(c.id).unwrap();
    assert_eq!(
        (terms[0].kind, terms[1].kind, terms[1].accounts),
        (TermKind::Basic, TermKind::Additional, 3)
    );
    let cancel = CancellationRecord {
        received: d,
        requested_end: None,
        effective: chrono::NaiveDate::from_ymd_opt(2027, 4, 30).unwrap(),
        actor: "operator".into(),
        created_at: 0,
    };
    s.cancellation_set(c.id, &cancel).unwrap();
    assert_eq!(s.cancellation(c.id).unwrap(), Some(cancel));
    let id = s.notice_add(c.id, "suspension", "subject", "body").unwrap();
    assert_eq!(s.notices(None, true).unwrap().len(), 1);
    s.notice_mark(id, false, Some("connection refused")).unwrap();
    assert_eq!(s.notices(None, true).unwrap()[0].attempts, 1);
    s.notice_mark(id, true, None).unwrap();
    assert!(s.notices(None, true).unwrap().is_empty());
    assert_eq!(s.setting("min_accounts").unwrap(), None);
    s.set_setting("min_accounts", "3").unwrap();
    s.set_setting("min_accounts", "4").unwrap();
    assert_eq!(s.setting("min_accounts").unwrap().as_deref(), Some("4"));
}

/// C6: an account registers at most its contract's device limit of client devices
/// (default 10); targets do not count.
fn client_devices_are_limited_per_account(s: &mut dyn Store) {
    let alice = with_account(s);
    let net = OverlayNet::default();
    s.device_register(alice.id, Role::Target, &Key32([200; 32]), "pc", net)
        .unwrap();
    for i in 0..10u8 {
        s.device_register(alice.id, Role::Client, &Key32([i; 32]), "laptop", net)
            .unwrap();
    }
    let r = s.device_register(alice.id, Role::Client, &Key32([10; 32]), "one-too-many", net);
    assert!(r.is_err(), "the 11th client device is refused");
    assert!(matches!(&r, Err(StoreError::DeviceLimit { limit: 10, .. })), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("mcvpn admin device remove"));
}

/// `atomically` commits on `Ok` and leaves nothing on `Err` or a panic, and the store
/// works on afterwards; savepoints inside it (contract add) nest.
fn atomically_commits_or_leaves_nothing(s: &mut dyn Store) {
    use crate::store::atomically;
    let r: Result<(), StoreError> = atomically(s, |s| {
        s.set_setting("a", "1")?;
        Err(StoreError::Refused("no".into()))
    });
    assert!(r.is_err());
    assert_eq!(s.setting("a").unwrap(), None);

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), StoreError> = atomically(s, |s| {
            s.set_setting("b", "1").unwrap();
            panic!("a bug half way through a change")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(s.setting("b").unwrap(), None);

    atomically(s, |s| {
        s.set_setting("c", "1")?;
        s.contract_add(&NewContract::simple("acme", 5)).map(|_| ())
    })
    .unwrap();
    assert_eq!(s.setting("c").unwrap().as_deref(), Some("1"));
    assert_eq!(s.terms(s.contract_by_name("acme").unwrap().id).unwrap().len(), 1);
}

fn operator_logins_are_apart_from_accounts(s: &mut dyn Store) {
    let _ = with_account(s);
    let m = s.operator_add("watch1", OperatorRole::Monitor, "h1").unwrap();
    assert_eq!((m.name.as_str(), m.role), ("watch1", OperatorRole::Monitor));
    assert!(matches!(
        s.operator_add("watch1", OperatorRole::Operator, "h2"),
        Err(StoreError::Conflict(_))
    ));
    // An operator login of the same name as a contract account is another login.
    s.operator_add("alice", OperatorRole::Operator, "h3").unwrap();
    assert_eq!(s.account_by_name("alice").unwrap().unwrap().password_hash, "hash");
    let names: Vec<_> = s.operators().unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["alice", "watch1"]);
    assert!(s.operator_remove("watch1").unwrap());
    assert!(!s.operator_remove("watch1").unwrap());
    assert_eq!(s.operator_by_name("watch1").unwrap(), None);
}

fn an_outage_is_recorded_once_per_source_and_start(s: &mut dyn Store) {
    let first = s.outage_record("monitor:m1", 1000, 1100).unwrap();
    let OutageRecorded::Added(id) = first else {
        panic!("{first:?}")
    };
    // A retry after a lost answer: nothing new.
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1100).unwrap(),
        OutageRecorded::Unchanged(id)
    );
    // An earlier end does not shorten it; a later one extends it.
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1050).unwrap(),
        OutageRecorded::Unchanged(id)
    );
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1200).unwrap(),
        OutageRecorded::Extended(id)
    );
    // Another monitor seeing the same outage records its own row.
    assert!(matches!(
        s.outage_record("monitor:m2", 1000, 1100).unwrap(),
        OutageRecorded::Added(other) if other != id
    ));
    assert!(matches!(
        s.outage_record("monitor:m1", 1000, 900),
        Err(StoreError::Refused(_))
    ));
    // Typed-in outages (no source) are never merged.
    s.outage_add(1000, 1100, "by hand").unwrap();
    s.outage_add(1000, 1100, "by hand").unwrap();
    let rows = s.outages().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].end_at, 1200);
    assert_eq!(rows[0].source.as_deref(), Some("monitor:m1"));
}

fn a_second_factor_step_is_accepted_once_and_never_an_older_one(s: &mut dyn Store) {
    let a = with_account(s);
    assert!(!a.totp);
    assert_eq!(s.account_totp(a.id).unwrap(), None);
    assert!(
        !s.account_totp_use_step(a.id, 5).unwrap(),
        "no second factor, nothing to use"
    );

    s.account_set_totp(a.id, Some(("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 10)))
        .unwrap();
    assert!(s.account_by_id(a.id).unwrap().totp);
    let t = s.account_totp(a.id).unwrap().unwrap();
    assert_eq!(t.secret, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    assert_eq!(t.last_step, Some(10));
    assert!(!format!("{t:?}").contains("JBSW"), "Debug hides the secret");

    assert!(!s.account_totp_use_step(a.id, 10).unwrap(), "the step used at setup");
    assert!(!s.account_totp_use_step(a.id, 9).unwrap(), "older");
    assert!(s.account_totp_use_step(a.id, 11).unwrap());
    assert!(!s.account_totp_use_step(a.id, 11).unwrap(), "replayed");
    assert_eq!(s.account_totp(a.id).unwrap().unwrap().last_step, Some(11));

    s.account_set_totp(a.id, None).unwrap();
    assert!(!s.account_by_id(a.id).unwrap().totp);
    assert_eq!(s.account_totp(a.id).unwrap(), None);
    assert!(s.account_totp(999).is_err());
}
