#!/usr/bin/env python3
"""Drives the daemon's web page in headless Chromium (selenium), end to end.

Usage:
  web_page.py --url http://127.0.0.1:PORT/ --magnet 'magnet:?xt=urn:btih:...' --hash HEX
              --screenshots DIR [--timeout 60] [--step-timeout 20]
              [--chromium /usr/bin/chromium] [--chromedriver /usr/bin/chromedriver]

Steps (one line printed for each): load the page; add the magnet through #add-url and
#add-button; wait until the row tr.torrent[data-hash=HASH] shows 100% (--timeout); open
its files and check that the first a.stream link answers a range request; pause it and
wait for "Paused"; remove it and wait until the row is gone. Screenshots go to
DIR/01-loaded.png, 02-added.png, 03-complete.png, 04-paused.png, 05-removed.png.

All along: no SEVERE message on the browser console (CSP violations, JS errors, failed
loads), no alert, and nothing injected by hostile torrent names (no <img> in the list,
window.__pwned unset). Exits 0 when every step passed, 1 with `FAIL: ...` otherwise.
Chromium always quits, and every wait is bounded (with a watchdog over the whole run).
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time


def import_selenium(wait=120):
    """selenium may still be being installed by scripts/install-peers: wait a while."""
    deadline = time.monotonic() + wait
    while True:
        try:
            import selenium  # noqa: F401
            from selenium import webdriver  # noqa: F401
            return
        except ImportError:
            if time.monotonic() > deadline:
                print("FAIL: cannot import selenium (python3 -m pip install selenium)", flush=True)
                sys.exit(1)
            time.sleep(3)


class Fail(Exception):
    pass


def step(text):
    print("ok: " + text, flush=True)


def main():
    ap = argparse.ArgumentParser(description="Drive the web page in headless Chromium.")
    ap.add_argument("--url", required=True)
    ap.add_argument("--magnet", required=True)
    ap.add_argument("--hash", required=True, help="the magnet's info-hash, hex")
    ap.add_argument("--screenshots", required=True, help="directory for the PNGs")
    ap.add_argument("--timeout", type=float, default=60, help="seconds to reach 100%%")
    ap.add_argument("--step-timeout", type=float, default=20, help="seconds for other steps")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = ap.parse_args()
    h = args.hash.strip().lower()
    if len(h) != 40 or any(c not in "0123456789abcdef" for c in h):
        print("FAIL: --hash must be 40 hex digits", flush=True)
        return 1
    for p in (args.chromium, args.chromedriver):
        if not os.access(p, os.X_OK):
            print("FAIL: %s is missing (apt-get install chromium chromium-driver)" % p, flush=True)
            return 1
    import_selenium()
    os.makedirs(args.screenshots, exist_ok=True)

    # A watchdog over everything, chromium's start included.
    budget = int(args.timeout + 8 * args.step_timeout + 60)

    def on_alarm(signum, frame):
        raise Fail("the whole run took more than %d s" % budget)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget)

    profile = tempfile.mkdtemp(prefix="web-page-chromium-")
    driver = None
    try:
        driver = start(args, profile)
        run(driver, args, h)
        print("PASS: web page", flush=True)
        return 0
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        shoot(driver, args.screenshots, "99-failure.png")
        return 1
    except Exception as e:  # selenium's own errors, with their message
        print("FAIL: %s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else ""),
              flush=True)
        shoot(driver, args.screenshots, "99-failure.png")
        return 1
    finally:
        signal.alarm(0)
        if driver is not None:
            try:
                driver.quit()
            except Exception:
                pass
        shutil.rmtree(profile, ignore_errors=True)


def shoot(driver, directory, name):
    if driver is None:
        return
    try:
        driver.save_screenshot(os.path.join(directory, name))
    except Exception:
        pass


def start(args, profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
              "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
              "--disable-extensions", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
              "--password-store=basic"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=args.chromedriver)
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(args.step_timeout)
    driver.set_script_timeout(args.step_timeout)
    return driver


def console_errors(driver):
    """SEVERE console entries, less the expected ones: the RPC's 409 (the session-id
    handshake, which Chromium logs as a failed load) and a favicon 404 (the page asks
    for none anyway)."""
    out = []
    for e in driver.get_log("browser"):
        if e.get("level") != "SEVERE":
            continue
        msg = e.get("message", "")
        if "favicon.ico" in msg:
            continue
        if "/transmission/rpc - " in msg and "status of 409" in msg:
            continue
        out.append(msg)
    return out


def check_clean(driver, where):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        raise Fail("%s: an alert popped up (%r): script injection" % (where, text))
    except NoAlertPresentException:
        pass
    errs = console_errors(driver)
    if errs:
        raise Fail("%s: console errors:\n  " % where + "\n  ".join(errs))
    bad = driver.execute_script(
        "return [window.__pwned === undefined ? 0 : 1,"
        " document.querySelectorAll('#torrents img, #torrents script, #message *').length];")
    if bad[0] or bad[1]:
        raise Fail("%s: markup from a torrent name got into the page (%r)" % (where, bad))


def wait(driver, seconds, what, cond):
    """Polls cond(driver) until it is truthy; Fail after `seconds`, saying what it saw."""
    from selenium.common.exceptions import StaleElementReferenceException, UnexpectedAlertPresentException

    deadline = time.monotonic() + seconds
    last = None
    while True:
        try:
            v = cond(driver)
            if v:
                return v
        except StaleElementReferenceException:
            pass
        except UnexpectedAlertPresentException as e:
            raise Fail("while waiting for %s: an alert popped up (%s): script injection" % (what, e.alert_text))
        except Fail:
            raise
        last = describe(driver)
        if time.monotonic() > deadline:
            raise Fail("timed out after %g s waiting for %s; saw: %s" % (seconds, what, last))
        time.sleep(0.25)


def describe(driver):
    try:
        return driver.execute_script(
            "const m = document.getElementById('message');"
            "const r = document.querySelector('tr.torrent[data-hash=\"' + arguments[0] + '\"]');"
            "const q = s => r && r.querySelector(s) ? r.querySelector(s).textContent : null;"
            "return JSON.stringify({message: m ? m.textContent : null, row: !!r,"
            " percent: q('.percent'), state: q('.state')});", driver._share_hash)
    except Exception as e:
        return "(cannot read the page: %s)" % type(e).__name__


def row(driver, h):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, 'tr.torrent[data-hash="%s"]' % h)
    return rows[0] if rows else None


def message_error(driver):
    from selenium.webdriver.common.by import By

    m = driver.find_element(By.ID, "message")
    if "error" in (m.get_attribute("class") or "").split():
        return m.text.strip()
    return None


def run(driver, args, h):
    from selenium.webdriver.common.by import By

    driver._share_hash = h
    t = args.step_timeout
    shots = args.screenshots

    driver.get(args.url)
    wait(driver, t, "the page to load", lambda d: d.execute_script(
        "return document.readyState === 'complete'"))
    for sel in ("#add-url", "#add-button", "#add-file", "#message", "#torrents"):
        if not driver.find_elements(By.CSS_SELECTOR, sel):
            raise Fail("the page has no %s" % sel)
    # The first poll has answered once the list or the empty note shows, or a message.
    wait(driver, t, "the first torrent list", lambda d: d.execute_script(
        "return document.querySelector('tr.torrent') !== null"
        " || !document.getElementById('empty').hidden"
        " || document.getElementById('message').textContent !== ''"))
    err = message_error(driver)
    if err:
        raise Fail("the page shows an error after loading: %s" % err)
    check_clean(driver, "after loading")
    n = len(driver.find_elements(By.CSS_SELECTOR, "tr.torrent"))
    driver.save_screenshot(os.path.join(shots, "01-loaded.png"))
    step("loaded %s (%d torrents listed, title %r)" % (args.url, n, driver.title))

    if row(driver, h) is not None:
        raise Fail("torrent %s is already in the list before adding it" % h)
    box = driver.find_element(By.ID, "add-url")
    box.clear()
    box.send_keys(args.magnet)
    driver.find_element(By.ID, "add-button").click()

    def added(d):
        e = message_error(d)
        if e:
            raise Fail("adding the magnet failed: %s" % e)
        return row(d, h)

    wait(driver, t, "the row of %s" % h, added)
    if driver.find_element(By.ID, "add-url").get_attribute("value"):
        raise Fail("the magnet box was not cleared after adding")
    r = row(driver, h)
    for sel in (".name", ".percent", ".state", ".pause", ".resume", ".remove", ".files-toggle"):
        if not r.find_elements(By.CSS_SELECTOR, sel):
            raise Fail("the row has no %s" % sel)
    if not r.find_elements(By.CSS_SELECTOR, "progress, .bar"):
        raise Fail("the row has no progress bar")
    driver.save_screenshot(os.path.join(shots, "02-added.png"))
    step("added the magnet: row %s, %r, %s" % (
        h, r.find_element(By.CSS_SELECTOR, ".state").text,
        r.find_element(By.CSS_SELECTOR, ".percent").text))

    started = time.monotonic()

    def complete(d):
        e = message_error(d)
        if e and not e.startswith("Daemon:"):
            raise Fail("the page shows an error: %s" % e)
        x = row(d, h)
        if x is None:
            raise Fail("the row of %s went away while downloading" % h)
        st = x.find_element(By.CSS_SELECTOR, ".state").text
        if st.startswith("Error"):
            raise Fail("the torrent failed: %s" % st)
        return x.find_element(By.CSS_SELECTOR, ".percent").text.strip() == "100%"

    wait(driver, args.timeout, "%s to reach 100%%" % h, complete)
    r = row(driver, h)
    step("complete: 100%% after %.1f s, state %r" % (
        time.monotonic() - started, r.find_element(By.CSS_SELECTOR, ".state").text))

    # The file list and its stream links.
    r.find_element(By.CSS_SELECTOR, ".files-toggle").click()
    sel = 'tr.files[data-files-for="%s"] a.stream' % h

    def links(d):
        return d.find_elements(By.CSS_SELECTOR, sel)

    found = wait(driver, t, "the file list of %s" % h, links)
    boxes = driver.find_elements(By.CSS_SELECTOR, 'tr.files[data-files-for="%s"] input.wanted' % h)
    if len(boxes) != len(found):
        raise Fail("%d stream links but %d wanted boxes" % (len(found), len(boxes)))
    href = found[0].get_attribute("href")
    if "/stream/%s/0" % h not in href:
        raise Fail("unexpected stream link %s" % href)
    status = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {headers: {Range: 'bytes=0-0'}})"
        ".then(r => r.arrayBuffer().then(b => done([r.status, b.byteLength])))"
        ".catch(e => done(['error', String(e)]));", href)
    if status[0] not in (200, 206):
        raise Fail("GET %s with a range answered %r" % (href, status))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(os.path.join(shots, "03-complete.png"))
    step("files: %d listed, %s answers a range request with HTTP %s" % (
        len(found), href, status[0]))

    r = row(driver, h)
    r.find_element(By.CSS_SELECTOR, ".pause").click()

    def paused(d):
        x = row(d, h)
        if x is None:
            raise Fail("the row went away when pausing")
        return x.find_element(By.CSS_SELECTOR, ".state").text.strip() == "Paused"

    wait(driver, t, "%s to read Paused" % h, paused)
    r = row(driver, h)
    if not r.find_element(By.CSS_SELECTOR, ".resume").is_displayed():
        raise Fail("no Resume button on a paused torrent")
    driver.save_screenshot(os.path.join(shots, "04-paused.png"))
    step("paused: state reads Paused, Resume shown")

    r.find_element(By.CSS_SELECTOR, ".remove").click()
    wait(driver, t, "the row of %s to go" % h, lambda d: row(d, h) is None)
    err = message_error(driver)
    if err:
        raise Fail("the page shows an error after removing: %s" % err)
    driver.save_screenshot(os.path.join(shots, "05-removed.png"))
    step("removed: the row is gone")

    check_clean(driver, "at the end")
    step("no console errors, no alert, no injected markup")


if __name__ == "__main__":
    sys.exit(main())
