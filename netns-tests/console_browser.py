#!/usr/bin/python3
"""Drives the hub's web console in a real browser (issue 14): Debian's Chromium, headless,
through chromium-driver and selenium. Run by netns-tests/130-console.sh inside a client
namespace; the hub's certificate is trusted by its SPKI hash alone.

An account administrator logs in, adds an account, watches it connect (the shell command
--up-cmd, a real `mcvpn up` in another namespace), disconnects it and times the client's
end, locks it and sees the next `mcvpn up` refused, downloads the access history as CSV and
checks its rows, logs out and sees the old cookie refused. On every page: a `lang`
attribute, a label for every form field, and no horizontal scroll at 360 px.

Prints one `PASS: …` or `FAIL: …` line per check and `figure: …` lines; exits 1 if any
check failed. Screenshots of each page go to --out.
"""

import argparse
import csv
import datetime
import io
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

FAILED = []


def check(ok, what):
    print(("PASS: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        FAILED.append(what)
    return ok


def figure(what):
    print("figure: " + what, flush=True)


def browser(spki, downloads):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in [
        "--headless=new",
        "--no-sandbox",  # root, in a namespace: Chromium's sandbox needs user namespaces it cannot nest here
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=ja",
        f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
        # Trust exactly the hub's key (its self-made certificate), nothing else. Chromium
        # honours this only with a --user-data-dir of its own.
        f"--ignore-certificate-errors-spki-list={spki}",
        # Nothing from the browser itself goes anywhere (the namespace has no way out anyway).
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ]:
        opts.add_argument(a)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": downloads, "download.prompt_for_download": False, "intl.accept_languages": "ja"},
    )
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    d.set_page_load_timeout(15)
    return d


class Console:
    def __init__(self, driver, base, out):
        self.d = driver
        self.base = base.rstrip("/")
        self.out = out
        self.shots = 0

    def get(self, path):
        self.d.get(self.base + path)

    def path(self):
        """The shown page's path and query (the browser drops a default :443 from the URL)."""
        u = urllib.parse.urlsplit(self.d.current_url)
        return u.path + ("?" + u.query if u.query else "")

    def wait_path(self, want, timeout=10):
        """Waits for a form's answer: page `want` (a path, or a prefix ending in ?) loaded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            here = self.path()
            at = here.startswith(want) if want.endswith("?") else here == want
            if at and self.d.execute_script("return document.readyState") == "complete":
                return True
            time.sleep(0.05)
        return False

    def navigating(self, click):
        """Runs `click` (a form's submit) and waits until the browser has left the page it
        showed. A form answered with the same path (a redirect back to the page, a refusal)
        would otherwise look done at once, and the old page would be read as the answer (a
        race a slow machine loses)."""
        # A mark on the page shown; a new document does not carry it.
        self.d.execute_script("window.mcvpnLeft = false")
        click()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.d.execute_script("return window.mcvpnLeft === undefined"):
                    return True
            except WebDriverException:
                pass  # a script run while the page is being replaced
            time.sleep(0.05)
        return False

    def press(self, selector, then):
        """Submits a form by its button and waits for the page it leads to."""
        left = self.navigating(self.d.find_element(By.CSS_SELECTOR, selector).click)
        return self.wait_path(then) and left

    def fresh(self, read, tries=5):
        """`read()` of the page shown, again when the page was replaced under the read: an
        element found before a navigation finished is stale after it (seen once in CI as
        "stale element reference" right after a page load)."""
        for i in range(tries):
            try:
                return read()
            except StaleElementReferenceException:
                if i == tries - 1:
                    raise
                time.sleep(0.2)

    def text(self):
        return self.fresh(lambda: self.d.find_element(By.TAG_NAME, "body").text)

    def rows(self):
        """The cells' text of every row of the page's tables."""
        return self.fresh(
            lambda: [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in self.d.find_elements(By.CSS_SELECTOR, "tbody tr")]
        )

    def shot(self, name):
        self.shots += 1
        f = os.path.join(self.out, f"{self.shots:02d}-{name}.png")
        # The whole page's height, so a screenshot shows every row.
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1280, max(700, min(height + 120, 2000)))
        self.d.save_screenshot(f)
        self.d.set_window_size(1280, 900)
        return f

    def accessible(self, name):
        """The basics on the page shown: lang, labels, and 360 px without sideways scroll."""
        lang = self.d.execute_script("return document.documentElement.lang")
        check(lang in ("ja", "en"), f"{name}: <html lang={lang!r}>")
        unlabelled = self.d.execute_script(
            """
            const bad = [];
            for (const el of document.querySelectorAll('input, select, textarea')) {
                if (el.type === 'hidden' || el.type === 'submit') continue;
                const named = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label');
                if (!named) bad.push(el.name || el.id || el.outerHTML.slice(0, 60));
            }
            return bad;
            """
        )
        check(not unlabelled, f"{name}: every form field has a label" + (f" (not: {unlabelled})" if unlabelled else ""))
        # A phone: 360 CSS pixels wide, the page's own width must not exceed it.
        self.d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}
        )
        try:
            widths = self.d.execute_script(
                """
                const view = document.documentElement.clientWidth;
                // The innermost elements sticking out, to say what to mend.
                const out = [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > view + 0.5 && !e.closest('.scroll'))
                    .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > view + 0.5))
                    .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                        (e.className ? '.' + e.className : '') + ' ' + Math.round(e.getBoundingClientRect().right) + 'px');
                return [document.documentElement.scrollWidth, view, out];
                """
            )
        finally:
            self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        check(widths[0] <= widths[1], f"{name}: no horizontal scroll at 360 px (page {widths[0]} px, view {widths[1]} px)"
              + (f"; sticking out: {widths[2]}" if widths[0] > widths[1] else ""))

    def submit_in_row(self, row_text, button_text, wait=True):
        """Clicks the button named `button_text` in the table row whose first cells hold
        `row_text`, and (with `wait`) waits until the browser has left the page."""
        for row in self.d.find_elements(By.CSS_SELECTOR, "tbody tr"):
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            if row_text in cells:
                for b in row.find_elements(By.CSS_SELECTOR, "button"):
                    if b.text.strip() == button_text:
                        if not wait:
                            b.click()
                            return True
                        return self.navigating(b.click)
        return False

    def row_cells(self, row_text):
        for cells in self.rows():
            if row_text in cells:
                return cells
        return None


def going_down_after(log, t0):
    """Seconds from `t0` (epoch) to the client log's first "mcvpn is going down" line after
    it, or None. The log's lines start with an RFC 3339 UTC time."""
    try:
        lines = open(log, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return None
    for line in lines:
        if "mcvpn is going down" not in line:
            continue
        try:
            at = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        except (ValueError, IndexError):
            continue
        if at >= t0:
            return at - t0
    return None


def sh(cmd, timeout=30):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--base", required=True, help="https://HUB (the console is under /console/)")
    ap.add_argument("--spki", required=True, help="base64 SHA-256 of the hub certificate's public key")
    ap.add_argument("--contract", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--admin-password-file", required=True)
    ap.add_argument("--user", required=True, help="the account the administrator adds")
    ap.add_argument("--user-password-file", required=True)
    ap.add_argument("--up-cmd", required=True, help="shell command: `mcvpn up` as --user")
    ap.add_argument("--running-cmd", required=True, help="shell command: succeeds while that client runs")
    ap.add_argument("--client-log", required=True, help="that client's log file (its going-down line is timed)")
    ap.add_argument("--operator", required=True, help="an operator login (`mcvpn admin operator add`)")
    ap.add_argument("--operator-password-file", required=True)
    ap.add_argument("--out", required=True, help="directory for screenshots and the CSV")
    args = ap.parse_args()

    read = lambda f: open(f).read().strip()  # noqa: E731
    admin_pw, user_pw = read(args.admin_password_file), read(args.user_password_file)
    args.operator_pw = read(args.operator_password_file)
    downloads = os.path.join(args.out, "downloads")
    os.makedirs(downloads, exist_ok=True)

    d = browser(args.spki, downloads)
    c = Console(d, args.base, args.out)
    try:
        run(c, args, admin_pw, user_pw, downloads)
    except WebDriverException as e:
        check(False, f"the browser stopped: {e.msg if hasattr(e, 'msg') else e}")
        try:
            c.shot("at-failure")
        except WebDriverException:
            pass
    finally:
        d.quit()
    print(f"{len(FAILED)} check(s) failed" if FAILED else "all browser checks passed", flush=True)
    sys.exit(1 if FAILED else 0)


def run(c, args, admin_pw, user_pw, downloads):
    d = c.d
    # Not logged in: the console sends the browser to its login page.
    c.get("/console/")
    check(c.path() == "/console/login", f"not logged in, /console/ leads to the login page ({c.path()})")
    c.accessible("login page")
    c.shot("login")

    def log_in(password):
        d.find_element(By.ID, "account").send_keys(args.admin)
        d.find_element(By.ID, "password").send_keys(password)
        c.navigating(d.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button[type=submit]").click)

    log_in(admin_pw + "-wrong")
    c.wait_path("/console/login")
    check(
        c.path() == "/console/login" and d.find_elements(By.CSS_SELECTOR, "p.error"),
        "a wrong password is refused on the login page",
    )
    t0 = time.monotonic()
    log_in(admin_pw)
    c.wait_path("/console/")
    figure(f"login to dashboard {time.monotonic() - t0:.2f} s (Argon2 check included)")
    check(c.path() == "/console/", f"{args.admin} logged in and sees the dashboard ({c.path()})")
    check(args.contract in c.text(), f"the dashboard names contract {args.contract}")
    c.accessible("dashboard")
    c.shot("dashboard")

    # Add the account.
    c.get("/console/accounts")
    d.find_element(By.ID, "new-user").send_keys(args.user)
    d.find_element(By.ID, "new-password").send_keys(user_pw)
    c.press("form[action='/console/accounts/add'] button", "/console/accounts")
    cells = c.row_cells(args.user)
    check(c.path() == "/console/accounts" and cells is not None, f"added account {args.user}: row {cells}")
    c.accessible("accounts")
    c.shot("accounts")

    # The new account connects from another namespace, and shows under live sessions.
    up = sh(args.up_cmd, timeout=60)
    check(up.returncode == 0, f"`mcvpn up` as {args.user} (status {up.returncode}) {up.stderr.strip()[-200:]}")
    seen = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        c.get("/console/sessions")
        if c.row_cells(args.user):
            seen = True
            break
        time.sleep(0.3)
    check(seen, f"{args.user}'s session is listed under live sessions: {c.row_cells(args.user)}")
    c.accessible("live sessions")
    c.shot("sessions")

    # Disconnect: the client's session ends within 1 s of the press. When it ended is the
    # time of its "going down" line in its own log (same clock): looking with
    # `mcvpn status` costs a process start each time, a lot on a loaded machine.
    t0_wall = time.time()
    pressed = c.submit_in_row(args.user, "切断", wait=False)
    check(pressed, "pressed 切断 (Disconnect) in the session's row")
    gone = None
    while time.time() - t0_wall < 5:
        if sh(args.running_cmd).returncode != 0:
            gone = time.time() - t0_wall
            break
        time.sleep(0.05)
    ended_after = going_down_after(args.client_log, t0_wall)
    figure(f"Disconnect to the client's end: {ended_after if ended_after is None else round(ended_after, 3)} s by its log, "
           f"seen gone by `mcvpn status` after {gone if gone is None else round(gone, 3)} s")
    check(
        gone is not None and ended_after is not None and ended_after <= 1.0,
        f"the client's session ended {ended_after and round(ended_after, 3)} s after Disconnect (<= 1 s; by its log)",
    )
    c.wait_path("/console/sessions")
    c.get("/console/sessions")
    check(c.row_cells(args.user) is None, f"{args.user} is no longer under live sessions")

    # Lock: the next `mcvpn up` is refused.
    c.get("/console/accounts")
    check(c.submit_in_row(args.user, "ロック"), f"pressed ロック (Lock) for {args.user}")
    c.wait_path("/console/accounts")
    cells = c.row_cells(args.user) or []
    check("ロック中" in cells, f"{args.user} is shown locked: {cells}")
    again = sh(args.up_cmd, timeout=60)
    said = (again.stdout + again.stderr).strip()
    check(
        again.returncode != 0 and ("lock" in said.lower() or "ロック" in said),
        f"the next `mcvpn up` as {args.user} is refused (status {again.returncode}): {said[-160:]}",
    )

    # Access history: the page, filtered by the form.
    c.get("/console/history")
    c.accessible("access history")
    d.find_element(By.ID, "f-account").send_keys(args.user)
    c.press("form.filters button", "/console/history?")
    rows = [r[3] for r in c.rows() if len(r) > 3]
    check(rows and set(rows) == {args.user}, f"history filtered to {args.user}: {len(rows)} rows, all {args.user}'s")

    # Targets and grants, and the account's devices (the laptop `mcvpn up` registered).
    c.get("/console/targets")
    check(c.path() == "/console/targets", "the targets and grants page opens")
    c.accessible("targets")
    c.get(f"/console/accounts/devices?user={args.user}")
    check(c.row_cells("vm") is not None, f"{args.user}'s device is listed: {c.row_cells('vm')}")
    c.accessible("devices")

    c.get("/console/notices")
    c.accessible("notices")
    c.shot("notices")

    c.get("/console/?lang=en")
    check(
        d.execute_script("return document.documentElement.lang") == "en" and "Dashboard" in c.text(),
        "?lang=en switches the console to English",
    )
    c.get("/console/?lang=ja")

    # The refused login shows in the history with its reason (接続履歴 is where an
    # administrator finds why a user cannot connect). Refusals are written in batches
    # (one row per source and reason, so a flood cannot write a row per attempt): within
    # a minute.
    t0 = time.monotonic()
    refused = []
    while time.monotonic() - t0 < 75 and not refused:
        c.get(f"/console/history?account={args.user}&result=refused")
        refused = c.rows()
        if not refused:
            time.sleep(2)
    figure(f"the refused login appeared in the history after {time.monotonic() - t0:.1f} s")
    check(
        any("login.refused" in r[2] and "locked" in r[5] for r in refused),
        f"the refused login is in the history with its reason: {refused[:1]}",
    )
    c.get(f"/console/history?account={args.user}")
    c.shot("history")

    # The CSV of that view, for Excel.
    for f in os.listdir(downloads):
        os.remove(os.path.join(downloads, f))
    d.find_element(By.PARTIAL_LINK_TEXT, "CSV").click()
    path = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and path is None:
        done = [f for f in os.listdir(downloads) if f.endswith(".csv")]
        path = os.path.join(downloads, done[0]) if done else None
        time.sleep(0.1)
    check(path is not None, f"the CSV downloaded ({path})")
    if path:
        raw = open(path, "rb").read()
        check(raw.startswith(b"\xef\xbb\xbf"), "the CSV starts with a UTF-8 byte-order mark (Japanese Excel)")
        check(raw.count(b"\r\n") == raw.count(b"\n"), "the CSV's lines end in CRLF")
        table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        head, body = table[0], table[1:]
        check(head == ["日時", "操作者", "種別", "アカウント", "接続元", "詳細"], f"the CSV's header is in Japanese: {head}")
        actions = [r[2] for r in body]
        figure(f"CSV: {len(body)} rows, actions {sorted(set(actions))}")
        check(body and {r[3] for r in body} == {args.user}, f"every CSV row is about {args.user} ({len(body)} rows)")
        want = {"account.add", "login.accepted", "session.end", "account.lock", "login.refused"}
        check(want <= set(actions), f"the CSV has the account's story: {sorted(want - set(actions)) or 'all of'} {sorted(want)}")
        via = sorted(r[2] for r in body if r[4].endswith("via console"))
        check(via == ["account.add", "account.lock", "session.end"], f"the console's actions say 'via console': {via}")
        with open(os.path.join(args.out, "access-history.csv"), "wb") as f:
            f.write(raw)

    # Log out; the old cookie no longer works.
    old = d.get_cookie("mcvpn_console")
    check(
        old is not None and old.get("httpOnly") and old.get("secure") and old.get("sameSite") == "Strict",
        f"the login cookie is HttpOnly, Secure, SameSite=Strict ({old and {k: old.get(k) for k in ('httpOnly', 'secure', 'sameSite')}})",
    )
    c.press("form[action='/console/logout'] button", "/console/login")
    check(c.path() == "/console/login", f"logged out to the login page ({c.path()})")
    if old:
        d.add_cookie({k: old[k] for k in ("name", "value", "path", "secure", "httpOnly", "sameSite") if k in old})
        c.get("/console/accounts")
        check(
            c.path() == "/console/login" and args.user not in c.text(),
            f"the old cookie no longer opens the console ({c.path()})",
        )
    operator_pages(c, args)
    print("shots: " + " ".join(shlex.quote(f) for f in sorted(os.listdir(c.out)) if f.endswith(".png")), flush=True)


def operator_pages(c, args):
    """The operator logs in with the operator choice, sees the contracts, suspends and
    resumes one (article named on the form), and the administrator pages stay closed."""
    d = c.d
    c.get("/console/login")
    d.find_element(By.ID, "as-operator").click()
    d.find_element(By.ID, "account").send_keys(args.operator)
    d.find_element(By.ID, "password").send_keys(args.operator_pw)
    c.press("form[action='/console/login'] button[type=submit]", "/console/contracts")
    cells = c.row_cells(args.contract)
    check(c.path() == "/console/contracts" and cells is not None, f"the operator sees the contracts: {cells}")
    c.accessible("contracts")
    c.shot("contracts")
    c.get(f"/console/contracts/show?name={args.contract}")
    check("第23条" in c.text() and "第24条" in c.text() and "第18条" in c.text(),
          "the contract page names the articles its forms apply (23, 24, 18)")
    c.accessible("contract")
    c.shot("contract")
    form = "form[action='/console/contracts/suspend']"
    d.find_element(By.CSS_SELECTOR, f"{form} input[name=reason]").send_keys("browser test")
    c.press(f"{form} button", f"/console/contracts/show?")
    check("利用停止中" in c.text(), "the operator suspended the contract from the console (利用停止中)")
    check(f"{args.contract} の利用を停止しました" in c.text(), "the flash line says so in Japanese")
    c.press("form[action='/console/contracts/resume'] button", "/console/contracts/show?")
    check("利用停止中" not in c.text(), "and resumed it")
    for page in ("/console/invoices", "/console/outages", "/console/tariff", "/console/maintenance"):
        c.get(page)
        check(c.path().startswith(page), f"the operator's page {page} opens")
        c.accessible(page)

    # Planned maintenance (art. 34-2): announced from the form, listed, then cancelled.
    day = datetime.date.today() + datetime.timedelta(days=3)
    for field, value in (("m-start", f"{day}T02:00"), ("m-end", f"{day}T05:00")):
        # A datetime-local field's typing is locale-bound; its value is not.
        d.execute_script("document.getElementById(arguments[0]).value = arguments[1]", field, value)
    d.find_element(By.ID, "m-reason").send_keys("ハブの更新（ブラウザ試験）")
    c.press("form[action='/console/maintenance/add'] button", "/console/maintenance")
    cells = c.row_cells("ハブの更新（ブラウザ試験）")
    check(cells is not None and "予定" in cells and "保守の予定" in c.text() and "を登録しました" in c.text(),
          f"the operator announced a maintenance window from the console: {cells}")
    c.shot("maintenance")
    c.press("form[action='/console/maintenance/cancel'] button", "/console/maintenance")
    cells = c.row_cells("ハブの更新（ブラウザ試験）")
    check(cells is not None and "取消済み" in cells, f"and cancelled it: {cells}")
    c.get("/console/accounts")
    check(c.path() == "/console/contracts", f"an administrator page leads the operator to the contracts ({c.path()})")
    c.press("form[action='/console/logout'] button", "/console/login")


if __name__ == "__main__":
    main()
