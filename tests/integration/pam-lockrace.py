#!/usr/bin/env python3
"""pam_mailfort: a code is not accepted once the account is locked, even when
the lock came after the account was read (concurrent failures).

A login reads the account (not locked), checks the code, then (authsucc,
after the password) accepts its time step with one UPDATE.  Here another session
locks the account in between: it holds the row while the login runs, so the
login's SELECT sees the old row and its UPDATE waits for the lock's COMMIT.
The UPDATE must then see the lock and refuse: the login fails as "locked",
the step stays unused, and no failure is counted.  A recovery code is the
exception: it is accepted while locked (the owner's way out) and ends the
lock.
Also: a refusal for an account without TOTP is counted like a wrong code.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup, totp_code, wait_fresh_step  # noqa: E402

PASSWORDS = {"gina": "pw-gina"}

site = Site("pam-lockrace", extra={"pam": {"max_failures": 5}})
pam = PamSetup(site, passwords=PASSWORDS)
secret = pam.enroll("gina")
pg = site.pg


def locker():
    """A psql session that locks gina inside an open transaction."""
    p = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.host, "-p",
                          str(pg.port), "-U", pg.user, "-d", site.db],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    p.stdin.write("BEGIN;\nUPDATE mailfort.accounts SET locked_until = now() + interval '1 hour' "
                  "WHERE username = 'gina';\n")
    p.stdin.flush()
    return p


def wait_blocked(timeout=20):
    """True once pam_mailfort's statement waits for the locker's row lock."""
    end = time.time() + timeout
    while time.time() < end:
        n = site.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'pam_mailfort' AND wait_event_type = 'Lock'")
        if n != "0":
            return True
        time.sleep(0.1)
    return False


def raced_login(what, answer):
    """Start a login, lock the account under it, return (ok, events)."""
    n0 = len(pam.events())
    lk = locker()
    # let the locker take the row before the login reads it
    deadline = time.time() + 10
    while time.time() < deadline and site.scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE a.datname = current_database() AND a.application_name = 'psql' "
            "AND l.locktype = 'transactionid' AND a.state = 'idle in transaction'") == "0":
        time.sleep(0.05)
    p, inp = pam.start("imap", "gina", answer)
    p.stdin.write(inp)
    p.stdin.close()
    blocked = wait_blocked()
    tap.ok(blocked, what + ": the login waits for the row the lock holds")
    lk.stdin.write("COMMIT;\n")
    lk.stdin.close()
    lk.wait(timeout=30)
    p.wait(timeout=60)
    evs = [(e.get("mode"), e.get("result"), e.get("reason")) for e in pam.events()[n0:]]
    return p.returncode == 0, evs


# ------------------------------------------------------------ TOTP code
wait_fresh_step(margin=12)
ok, evs = raced_login("totp", PASSWORDS["gina"] + totp_code(secret))
tap.ok(not ok, "a valid code is refused when the account was locked meanwhile")
tap.eq(evs[-1:], [("authsucc", "fail", "locked")],
       "the event of authsucc, which uses up the code after the password, says locked")
tap.eq(pam.account("gina", "totp_last_step, failed_count"), ["0", "0"],
       "the step was not used up and no failure was counted")

# ------------------------------------------------------------ recovery code
site.sql("UPDATE mailfort.accounts SET locked_until = NULL WHERE username = 'gina'")
r = site.ctl("totp", "recovery", "gina", check=True)
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
tap.eq(len(codes), 10, "recovery codes issued")
ok, evs = raced_login("recovery", PASSWORDS["gina"] + codes[0])
tap.ok(ok, "a recovery code is accepted also when the account was locked meanwhile "
       "(the owner's way out of a lock)")
tap.eq(evs, [("auth", "ok", "recovery")], "the event says recovery")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.recovery_codes r JOIN mailfort.accounts a "
                   "ON a.id = r.account_id WHERE a.username = 'gina' AND r.used_at IS NULL"),
       "9", "the recovery code was used up")
tap.eq(pam.account("gina")[1], "f", "and the login ended the lock")

# ------------------------------------------------------------ used up
ok, _ = pam.auth("imap", "gina", PASSWORDS["gina"] + codes[0])
tap.ok(not ok, "the same recovery code does not work twice")

# ------------------------------------------------------------ not enrolled
# Under not_enrolled = require a refusal does what a wrong code does (the
# failure is counted), so its time does not tell enrolled names apart.
site.sql("INSERT INTO mailfort.accounts (username) VALUES ('hank') ON CONFLICT DO NOTHING")
ok, _ = pam.auth("imap", "hank", "pw-hank123456")
tap.ok(not ok, "not enrolled under require: refused")
tap.eq(pam.account("hank", "failed_count"), ["1"], "and counted like a wrong code")
ok, _ = pam.auth("imap", "nosuchuser", "pw123456")
tap.eq([(e.get("result"), e.get("reason")) for e in pam.events(user="nosuchuser")],
       [("fail", "not_enrolled")], "an unknown user is refused the same way")

tap.done()
