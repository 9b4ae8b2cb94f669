#!/usr/bin/env python3
"""The store's crash test (issue 13): SIGKILL `mcvpn admin` and the hub at random points
while they make mixed changes to one store, then check that nothing was half-applied.

    python3 scripts/crash_test.py MCVPN_BINARY WORKDIR [--kills N] [--changes N] [--seed S]

Run through scripts/crash-test.sh. The hub runs on 127.0.0.1 only, delivering notices
to netns-tests/smtp_sink.py on 127.0.0.1.

Changes (each one `mcvpn admin --db STORE ...` process): contract add (with its basic
term and audit entry), an additional contract (art. 12: a term and an audit entry),
a suspension (state, audit entry and a notice to the administrator, art. 23-2) and an
account add (account and audit entry). About half of them are SIGKILLed after a random
delay within the time one takes; the hub (which, meanwhile, delivers notices and marks
them sent) is SIGKILLed and restarted at random points too.

Checked at the end, on the store file:
  * PRAGMA integrity_check is "ok", and foreign_key_check finds nothing;
  * every change is all there or all absent: a contract with exactly one basic term and
    one `contract.add` entry; as many additional terms as `contract.additional`
    entries; a suspended contract with one `contract.suspend` entry and one suspension
    notice, an active one with neither; an account with its `account.add` entry;
  * every change whose process finished with exit 0 is there (durable), even after the
    hub was killed later;
  * no notice is lost: every notice row is delivered to the mail sink, with its
    Message-ID. Delivery is at least once (a kill between the server's "250 OK" and the
    hub's mark sends it again, with the same Message-ID, so the inbox keeps one); the
    report counts such repeats, which must stay within the hub kills that could cause
    them.

Prints a JSON report as its last line; exits 1 if a check fails.
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = os.path.join(HERE, "..", "netns-tests", "smtp_sink.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, mcvpn, work, smtp_port):
        self.mcvpn, self.work, self.smtp_port = mcvpn, work, smtp_port
        self.port = free_port()
        self.proc = None
        self.starts = 0

    def start(self):
        log = open(os.path.join(self.work, "hub.log"), "ab")
        self.proc = subprocess.Popen(
            [
                self.mcvpn, "hub",
                "--listen", f"127.0.0.1:{self.port}",
                "--https-listen", "off",
                "--key", os.path.join(self.work, "hub.key"),
                "--db", os.path.join(self.work, "hub.db"),
                "--status-socket", os.path.join(self.work, "hub.sock"),
                "--socket-buffer", "0",
                "--smtp", f"smtp://127.0.0.1:{self.smtp_port}",
                "--smtp-from", "mcvpn@hub.test",
                "--log", "info",
            ],
            stdout=log, stderr=log,
        )
        self.starts += 1

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def admin_argv(mcvpn, db, args):
    return [mcvpn, "admin", "--db", db, "--log", "error"] + args


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mcvpn")
    ap.add_argument("work")
    ap.add_argument("--changes", type=int, default=100000, help="at most this many changes")
    ap.add_argument("--kills", type=int, default=1000, help="stop after this many kills (admin and hub)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    db = os.path.join(a.work, "hub.db")
    pw = os.path.join(a.work, "pw")
    with open(pw, "w") as f:
        f.write("a long enough password 1\n")
    mails = os.path.join(a.work, "mail")
    os.makedirs(mails, exist_ok=True)
    smtp_port = free_port()
    sink = subprocess.Popen([sys.executable, SINK, "127.0.0.1", str(smtp_port), mails],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hub = Hub(a.mcvpn, a.work, smtp_port)
    try:
        return run(a, rng, db, pw, mails, hub)
    finally:
        if hub.proc and hub.proc.poll() is None:
            hub.kill()
        sink.kill()


def run(a, rng, db, pw, mails, hub):
    # The store exists (schema made) before the hub and the first kill.
    subprocess.run(admin_argv(a.mcvpn, db, ["tariff", "show"]), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hub.start()

    contracts = []          # names whose add was tried
    suspended_tried = set()
    accounts = []           # (contract, user) tried
    finished = []           # (kind, args) that exited 0
    outcomes = {"finished": 0, "refused": 0, "killed": 0, "killed_after_exit": 0}
    hub_kills = 0
    durations = {}          # kind -> seconds its unkilled runs took
    next_hub_kill = rng.randint(5, 40)
    backup, backup_file = None, os.path.join(a.work, "backup.db")
    t_start = time.time()

    for i in range(a.changes):
        if outcomes["killed"] + hub_kills >= a.kills:
            break
        if backup is None and outcomes["killed"] + hub_kills >= a.kills // 2:
            # An online backup, while the hub runs and the next change is made.
            backup = subprocess.Popen(admin_argv(a.mcvpn, db, ["backup", backup_file]),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if i >= next_hub_kill:
            # The hub dies (perhaps while it marks a notice sent), and comes back while
            # the next changes run.
            hub.kill()
            hub_kills += 1
            hub.start()
            next_hub_kill = i + rng.randint(5, 40)
        kind = rng.choices(["contract", "additional", "suspend", "account"],
                           weights=[3, 2, 1, 3])[0]
        if kind != "contract" and not contracts:
            kind = "contract"
        if kind == "contract":
            name = f"c{i}"
            contracts.append(name)
            args = ["contract", "add", name, "--kind", "corporation", "--accounts", "50",
                    "--start", "2026-12-01", "--admin-name", "Sato",
                    "--admin-email", f"it@{name}.example"]
        elif kind == "additional":
            name = rng.choice(contracts)
            args = ["contract", "add-accounts", name, "1"]
        elif kind == "suspend":
            fresh = [c for c in contracts if c not in suspended_tried]
            if not fresh:
                continue
            name = rng.choice(fresh)
            suspended_tried.add(name)
            args = ["contract", "suspend", name, "--reason", f"crash test {i}"]
        else:
            name = rng.choice(contracts)
            user = f"u{i}"
            accounts.append((name, user))
            args = ["account", "add", name, user, "--password-file", pw]

        t0 = time.time()
        p = subprocess.Popen(admin_argv(a.mcvpn, db, args),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        took = durations.get(kind, [])
        kill_it = rng.random() < 0.5 and len(took) >= 3
        if kill_it:
            # Somewhere inside the time a change of this kind takes.
            typical = sorted(took)[len(took) // 2]
            delay = rng.uniform(0, typical * 1.1)
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
                outcomes["killed"] += 1
                continue
            outcomes["killed_after_exit"] += 1
        err = p.communicate()[1]
        if not kill_it:
            durations.setdefault(kind, []).append(time.time() - t0)
        if p.returncode == 0:
            outcomes["finished"] += 1
            finished.append((kind, args))
        else:
            outcomes["refused"] += 1
            if b"not active" not in err and b"no contract" not in err.lower() \
                    and b"does not exist" not in err and b"no such" not in err.lower():
                sys.stderr.write(f"change {args} refused: {err.decode(errors='replace')}")

    change_seconds = time.time() - t_start
    # Let the hub deliver the outbox, then stop it.
    deadline = time.time() + 60
    while time.time() < deadline:
        con = sqlite3.connect(db)
        unsent = con.execute(
            "SELECT count(*) FROM notices WHERE sent_at IS NULL AND failed_at IS NULL").fetchone()[0]
        con.close()
        if unsent == 0:
            break
        time.sleep(0.5)
    hub.stop()

    failures, present = check_whole(db, contracts, accounts)
    con = sqlite3.connect(db)
    q = lambda sql, *p: con.execute(sql, p).fetchall()
    integrity = q("PRAGMA integrity_check")[0][0]
    # Durability: what finished is there.
    lost = []
    for kind, args in finished:
        if kind == "contract" and args[2] not in present:
            lost.append(args)
        elif kind == "account" and not q("SELECT 1 FROM accounts WHERE username = ?", args[3]):
            lost.append(args)
        elif kind == "suspend" and q("SELECT state FROM contracts WHERE name = ?", args[2]) != [("suspended",)]:
            lost.append(args)
    if lost:
        failures.append(f"{len(lost)} changes that finished are gone: {lost[:3]}")
    extra_terms = q("SELECT count(*) FROM contract_terms WHERE kind != 'basic'")[0][0]
    finished_extra = sum(1 for k, _ in finished if k == "additional")
    if extra_terms < finished_extra:
        failures.append(f"{finished_extra} additional contracts finished but {extra_terms} are stored")

    # The online backup is whole too, and restores over the store into a hub that starts.
    restored = None
    if backup is None:
        failures.append("no backup was taken")
    else:
        err = backup.communicate()[1]
        if backup.returncode != 0:
            failures.append(f"mcvpn admin backup failed: {err.decode(errors='replace')}")
        else:
            backup_failures, in_backup = check_whole(backup_file, contracts, accounts)
            failures += [f"backup: {f}" for f in backup_failures]
            restored = len(in_backup)

    # Notices: every one delivered; repeats only with the same Message-ID.
    notices = {r[0]: (r[1], r[2]) for r in q("SELECT id, sent_at, failed_at FROM notices")}
    seen = {}
    for f in os.listdir(mails):
        with open(os.path.join(mails, f)) as fh:
            m = json.load(fh)
        mid = re.search(r"mcvpn-notice-(\d+)-", m.get("message_id") or "")
        if not mid:
            failures.append(f"mail without an mcvpn Message-ID: {m.get('message_id')}")
            continue
        seen[int(mid.group(1))] = seen.get(int(mid.group(1)), 0) + 1
    undelivered = [n for n in notices if n not in seen]
    unknown = [n for n in seen if n not in notices]
    repeats = sum(c - 1 for c in seen.values())
    if undelivered:
        failures.append(f"{len(undelivered)} notices never delivered: ids {undelivered[:5]}")
    if unknown:
        failures.append(f"mail for notices the store does not have (a rolled-back change was sent): {unknown[:5]}")
    not_marked = [n for n, (sent, failed) in notices.items() if sent is None and failed is None]
    if not_marked:
        failures.append(f"{len(not_marked)} notices left unsent in the outbox")
    if repeats > hub_kills:
        failures.append(f"{repeats} notices sent twice, more than the {hub_kills} hub kills explain")
    con.close()

    if restored is not None:
        r = subprocess.run(admin_argv(a.mcvpn, db, ["restore", backup_file]), capture_output=True)
        if r.returncode != 0:
            failures.append(f"mcvpn admin restore failed: {r.stderr.decode(errors='replace')}")
        else:
            restore_failures, now_present = check_whole(db, contracts, accounts)
            failures += [f"restored: {f}" for f in restore_failures]
            if len(now_present) != restored:
                failures.append(f"restored store has {len(now_present)} contracts, the backup {restored}")
            hub.start()
            time.sleep(1.5)
            if hub.proc.poll() is not None:
                failures.append("the hub does not start on the restored store (see hub.log)")
            else:
                hub.stop()

    report = {
        "seed": a.seed,
        "changes": i + 1,
        "median_seconds": {k: round(sorted(v)[len(v) // 2], 3) for k, v in durations.items()},
        "change_seconds": round(change_seconds, 1),
        "admin": outcomes,
        "hub_kills": hub_kills,
        "kills": outcomes["killed"] + hub_kills,
        "contracts": len(present),
        "accounts": q2(db, "SELECT count(*) FROM accounts"),
        "additional_terms": extra_terms,
        "suspended": q2(db, "SELECT count(*) FROM contracts WHERE state = 'suspended'"),
        "notices": len(notices),
        "notices_delivered": len(seen),
        "notice_repeats": repeats,
        "backup_contracts_restored": restored,
        "integrity": integrity,
        "failures": failures,
    }
    print(json.dumps(report))
    return 1 if failures else 0


def check_whole(db, contracts, accounts):
    """The all-or-nothing checks on one store file; returns (failures, present)."""
    failures = []
    con = sqlite3.connect(db)
    q = lambda sql, *p: con.execute(sql, p).fetchall()
    integrity = q("PRAGMA integrity_check")[0][0]
    if integrity != "ok":
        failures.append(f"integrity_check: {integrity}")
    fk = q("PRAGMA foreign_key_check")
    if fk:
        failures.append(f"foreign_key_check: {fk[:5]}")

    def audits(action, contract_id, account=None):
        if account is None:
            return q("SELECT count(*) FROM audit WHERE action = ? AND contract_id = ?",
                     action, contract_id)[0][0]
        return q("SELECT count(*) FROM audit WHERE action = ? AND contract_id = ? AND account = ?",
                 action, contract_id, account)[0][0]

    present = {}
    for name in contracts:
        row = q("SELECT id, state FROM contracts WHERE name = ?", name)
        if not row:
            continue
        cid, state = row[0]
        present[name] = cid
        basic = q("SELECT count(*) FROM contract_terms WHERE contract_id = ? AND kind = 'basic'", cid)[0][0]
        if basic != 1 or audits("contract.add", cid) != 1:
            failures.append(f"{name}: {basic} basic terms, {audits('contract.add', cid)} contract.add entries")
        extra = q("SELECT count(*) FROM contract_terms WHERE contract_id = ? AND kind != 'basic'", cid)[0][0]
        if extra != audits("contract.additional", cid):
            failures.append(f"{name}: {extra} additional terms but "
                            f"{audits('contract.additional', cid)} contract.additional entries")
        sus_audit = audits("contract.suspend", cid)
        sus_notice = q("SELECT count(*) FROM notices WHERE contract_id = ? AND kind = 'suspension'", cid)[0][0]
        want = 1 if state == "suspended" else 0
        if state not in ("active", "suspended") or sus_audit != want or sus_notice != want:
            failures.append(f"{name}: state {state}, {sus_audit} suspend entries, {sus_notice} notices")
    orphans = q("SELECT count(*) FROM audit WHERE action IN ('contract.add', 'contract.additional', "
                "'contract.suspend', 'account.add') AND contract_id NOT IN (SELECT id FROM contracts)")[0][0]
    if orphans:
        failures.append(f"{orphans} audit entries of changes to contracts that are not there")
    for name, user in accounts:
        row = q("SELECT contract_id FROM accounts WHERE username = ?", user)
        entries = q("SELECT count(*) FROM audit WHERE action = 'account.add' AND account = ?", user)[0][0]
        if bool(row) != (entries == 1) or entries > 1:
            failures.append(f"account {user}: row {bool(row)}, {entries} account.add entries")
    stray = q("SELECT count(*) FROM accounts WHERE contract_id NOT IN (SELECT id FROM contracts)")[0][0]
    if stray:
        failures.append(f"{stray} accounts of no contract")

    con.close()
    return failures, present


def q2(db, sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


if __name__ == "__main__":
    sys.exit(main())
