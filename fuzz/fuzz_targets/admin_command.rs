//! The admin command decoder and the one execution path behind it, as an account
//! administrator reaches them over the control channel: arbitrary JSON lines decode to
//! commands (or are refused), each runs in the scope of contract `acme`'s administrator
//! against a real (in-memory) SQLite store, and its answer renders as text and JSON.
//! The invariants: no panic, and nothing another contract holds ever changes, whatever
//! the administrator sends (the scope check of `authorize` and of every command).
#![no_main]

use std::sync::OnceLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use mcvpn::admin::{self, render, AdminCommand, ExecCtx, Scope};
use mcvpn::proto::control::{Key32, Role};
use mcvpn::store::prelude::*;
use mcvpn::store::{NewContract, SqliteStore};

/// Argon2 costs about a second: one hash for every fixture account, computed once.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| mcvpn::password::hash("correct horse battery staple"))
}

struct Fixture {
    store: SqliteStore,
    ctx: ExecCtx,
    other: i64,
    other_accounts: Vec<i64>,
    other_targets: Vec<i64>,
}

fn fixture() -> Fixture {
    let mut store = SqliteStore::open_in_memory().expect("in-memory store");
    let acme = store.contract_add(&NewContract::simple("acme", 5)).unwrap();
    let other = store.contract_add(&NewContract::simple("zz-bravo", 5)).unwrap();
    let hash = password_hash();
    let alice = store.account_add("acme", "alice", hash).unwrap();
    let bob = store.account_add("acme", "bob", hash).unwrap();
    store.contract_set_admin_account(acme.id, Some(alice.id)).unwrap();
    let b_user = store.account_add("zz-bravo", "zz-bravo-user", hash).unwrap();
    let b_admin = store.account_add("zz-bravo", "zz-bravo-admin", hash).unwrap();
    store.contract_set_admin_account(other.id, Some(b_admin.id)).unwrap();
    let a_pc = store.device_register(bob.id, Role::Target, &Key32([1; 32]), "acme-pc", Default::default()).unwrap();
    let b_pc = store
        .device_register(b_user.id, Role::Target, &Key32([2; 32]), "zz-bravo-pc", Default::default())
        .unwrap();
    store.device_register(b_user.id, Role::Client, &Key32([3; 32]), "zz-bravo-laptop", Default::default()).unwrap();
    store.grant_add(b_pc.id, b_admin.id).unwrap();
    store.grant_add(a_pc.id, alice.id).unwrap();
    let mut ctx = ExecCtx::operator(NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
    ctx.scope = Scope::Contract { id: acme.id, name: "acme".into() };
    ctx.actor = "admin:alice".into();
    Fixture { store, ctx, other: other.id, other_accounts: vec![b_user.id, b_admin.id], other_targets: vec![b_pc.id] }
}

/// Everything the other contract holds, as text: it must not change.
fn other_contract(f: &Fixture) -> String {
    let s = &f.store;
    let grants: Vec<_> = s
        .grants(None)
        .unwrap()
        .into_iter()
        .filter(|g| f.other_accounts.contains(&g.account_id) || f.other_targets.contains(&g.target_device_id))
        .collect();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        s.contract_by_id(f.other).unwrap(),
        s.accounts(Some(f.other)).unwrap(),
        s.devices(None, Some(f.other)).unwrap(),
        grants,
        s.terms(f.other).unwrap(),
        s.cancellation(f.other).unwrap(),
        s.contract_history(f.other).unwrap(),
    )
}

fuzz_target!(|data: &[u8]| {
    let commands: Vec<AdminCommand> =
        data.split(|b| *b == b'\n').take(8).filter_map(|line| serde_json::from_slice(line).ok()).collect();
    if commands.is_empty() {
        return;
    }
    let mut f = fixture();
    let before = other_contract(&f);
    for cmd in commands {
        // A decoded command encodes back to one that decodes to itself.
        let again = serde_json::to_vec(&cmd).expect("a decoded command encodes");
        assert_eq!(serde_json::from_slice::<AdminCommand>(&again).expect("re-decodes"), cmd);
        let _ = admin::authorize(&f.ctx.scope, &cmd);
        // Hashing a new password costs a second of Argon2: decoded and authorized
        // above, but not run (the store side of a password change is plain SQL).
        if cmd.new_password().is_some() {
            continue;
        }
        let result = admin::execute(&mut f.store, &f.ctx, &admin::prepare(cmd));
        if let Ok(output) = &result {
            let _ = render::json(output);
            let _ = render::text(output);
        }
        assert_eq!(before, other_contract(&f), "another contract's data changed");
    }
});
