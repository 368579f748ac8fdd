#!/usr/bin/env python3
"""pam_mailfort throttling: it stops the attacker, not the owner.

As the attacker, from addresses of the attacker's own (PAM_RHOST, as
Dovecot sets it), who knows the password and guesses codes:

- after throttle_after failures the attacker's address must wait, and the
  wait doubles with each further failure; while it waits even the right
  code is refused unlooked-at (not used up, not counted), and rotating
  addresses inside one IPv6 /64 does not help;
- the owner, from their own address, logs in with password+code
  meanwhile, and their app password works even from the attacker's
  address (a shared NAT);
- one failure from each of many addresses locks nothing: the account
  locks only when lock_sources addresses have each used up their own
  budget (throttle_after failures), or at max_failures failures from all
  addresses together; a lock forgets every address, so after it one more
  failure does not lock again; while it is locked the owner's app
  password still works, password+code does not, password+recovery code
  does and ends the lock;
- mailfortctl user unlock ends the lock and the waits;
- a code (TOTP or recovery) is used up only once the password is right:
  a typo does not burn it; a recovery code may be typed with spaces;
- an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address, not
  a /64 shared by every IPv4 client.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup, totp_code, wait_fresh_step  # noqa: E402

PASSWORD = "correct horse battery"
ATTACKER = "203.0.113.66"
OWNER = "198.51.100.10"

site = Site("pam-throttle", extra={"pam": {
    "throttle_after": 3, "throttle_delay": "60s", "throttle_max_delay": "1h",
    "lock_sources": 4, "max_failures": 8, "lockout_seconds": 600}})
pam = PamSetup(site, passwords={"alice": PASSWORD})
secret = pam.enroll("alice")
r = site.ctl("apppass", "add", "alice", "--label", "phone", "--protocols", "imap")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
apppass = m.group(1) if m else ""
tap.ok(apppass != "", "app password issued", r.stdout + r.stderr)


def login(rhost, token):
    """One IMAP login from rhost; returns (ok, the events it appended)."""
    pam.rhost = rhost
    n0 = len(pam.events())
    ok, _ = pam.auth("imap", "alice", token)
    return ok, pam.events()[n0:]


def reasons(evs):
    return [(e.get("mode"), e.get("reason")) for e in evs]


def bad_code():
    return "%06d" % ((int(totp_code(secret)) + 11) % 1000000)


def wait_seconds(source):
    v = site.scalar("SELECT extract(epoch FROM t.delayed_until - t.last_failure_at) "
                    "FROM mailfort.auth_throttle t JOIN mailfort.accounts a ON a.id = t.account_id "
                    "WHERE a.username = 'alice' AND t.source = :'s'", params={"s": source})
    return float(v) if v not in (None, "") else None


def locked():
    return pam.account("alice")[1] == "t"


# ---------------------------------------- the attacker's address is slowed
wait_fresh_step(margin=10)
for i in range(3):
    ok, evs = login(ATTACKER, PASSWORD + bad_code())
    tap.ok(not ok and reasons(evs) == [("auth", "bad_code")],
           "attacker: wrong code %d refused and counted" % (i + 1), evs)
tap.ok(evs[-1].get("throttled") is True, "the third failure makes the attacker's address wait",
       evs)
tap.ok(58 <= (wait_seconds(ATTACKER) or 0) <= 62, "for throttle_delay (%s s)"
       % wait_seconds(ATTACKER))
tap.ok(not locked(), "the account is not locked")
calls = pam.calls()
ok, evs = login(ATTACKER, PASSWORD + totp_code(secret))
tap.ok(not ok and reasons(evs) == [("auth", "throttled")],
       "attacker: even the right code is refused while the address waits", evs)
tap.eq(pam.calls(), calls, "without the password being checked")

# ------------------------------------------------ the owner is not slowed
ok, evs = login(OWNER, PASSWORD + totp_code(secret))
tap.ok(ok and reasons(evs) == [("auth", "ok")],
       "owner, from their own address: password+code accepted (the attacker's refused try "
       "did not use the code up)", evs)
ok, evs = login(ATTACKER, apppass)
tap.ok(ok and reasons(evs) == [("apppass", "apppass")],
       "owner's app password accepted from the attacker's (shared) address", evs)
ok, evs = login(ATTACKER, PASSWORD + bad_code())
tap.ok(not ok and reasons(evs) == [("auth", "throttled")],
       "that app password login did not free the attacker: the address still waits", evs)

# ------------------------------------------------------ growing waits
site.sql("UPDATE mailfort.auth_throttle SET delayed_until = now() - interval '1 second'")
ok, evs = login(ATTACKER, PASSWORD + bad_code())
tap.ok(not ok and reasons(evs) == [("auth", "bad_code")] and evs[0].get("throttled") is True,
       "attacker, after the wait: the next wrong code is looked at, counted, and waits again",
       evs)
tap.ok(118 <= (wait_seconds(ATTACKER) or 0) <= 122, "twice as long (%s s)"
       % wait_seconds(ATTACKER))

# ------------------------------------------- an IPv6 /64 is one address
for i, host in enumerate(["2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:ffff::3"]):
    ok, evs = login(host, PASSWORD + bad_code())
tap.ok(evs[-1].get("throttled") is True, "three failures from three addresses of one /64: "
       "that network waits", evs)
ok, evs = login("2001:db8:7:1::99", PASSWORD + totp_code(secret))
tap.ok(not ok and reasons(evs) == [("auth", "throttled")],
       "a fourth address in the same /64 is refused too", evs)
tap.ok(not locked(), "two addresses failing do not lock the account")

# ------------- one try from each of many addresses is no distributed guesser
# (an outsider who knows only the name must not lock the owner out cheaply)
site.set("pam", "max_failures", 60)
spray = ["192.0.2.%d" % i for i in range(100, 110)]
for host in spray:
    ok, evs = login(host, PASSWORD + bad_code())
tap.ok(not ok and not locked(), "one failure from each of 10 addresses (lock_sources = 4) "
       "does not lock the account: an address counts once it used up its own budget", evs)
ok, evs = login(OWNER, PASSWORD + totp_code(secret, time.time() + 30))
tap.ok(ok and reasons(evs) == [("auth", "ok")], "the owner logs in meanwhile", evs)

# --------------------------- many addresses: the account locks, app password still works
for i in range(3):
    ok, evs = login("192.0.2.201", PASSWORD + bad_code())
tap.ok(not ok and not locked(), "a third address that used up its budget: not locked yet", evs)
r = site.ctl("user", "status", "alice")
tap.ok(re.search(r"addresses held:\s+[1-9]", r.stdout) is not None,
       "user status shows the waiting addresses", r.stdout + r.stderr)
for i in range(3):
    ok, evs = login("192.0.2.202", PASSWORD + bad_code())
tap.ok(not ok and evs[-1].get("locked") is True and locked(),
       "the fourth address to use up its budget (lock_sources = 4) locks the account", evs)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.auth_throttle"), "0",
       "the lock forgets every address: the next lock takes the whole effort again")
ok, evs = login(OWNER, PASSWORD + totp_code(secret, time.time() + 60))
tap.ok(not ok and reasons(evs) == [("auth", "locked")],
       "while locked: the owner's password+code is refused", evs)
ok, evs = login(OWNER, apppass)
tap.ok(ok and reasons(evs) == [("apppass", "apppass")],
       "while locked: the owner's app password is accepted (guessed codes do not lock it out)",
       evs)
tap.ok(locked(), "and that app password login does not end the lock")
r = site.ctl("user", "unlock", "alice")
tap.ok(r.returncode == 0 and not locked() and site.scalar(
    "SELECT count(*) FROM mailfort.auth_throttle") == "0",
    "user unlock ends the lock and every address's wait", r.stdout + r.stderr)

# ------------- after a lock ends, one more failure from a new address is one failure
for host in ["192.0.2.%d" % i for i in range(110, 114)]:
    for i in range(3):
        login(host, PASSWORD + bad_code())
tap.ok(locked(), "locked again by four addresses each using up its budget")
site.sql("UPDATE mailfort.accounts SET locked_until = now() - interval '1 second' "
         "WHERE username = 'alice'")
ok, evs = login("2001:db8:99::1", PASSWORD + bad_code())
tap.ok(not ok and reasons(evs) == [("auth", "bad_code")] and not locked(),
       "after the lock expired: one failure from a new /64 does not lock it again", evs)

# ------------- the owner's way out: password + recovery code ends a lock
r = site.ctl("totp", "recovery", "alice")
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
tap.eq(len(codes), 10, "ten recovery codes issued")
for host in ["192.0.2.%d" % i for i in range(120, 124)]:
    for i in range(3):
        login(host, PASSWORD + bad_code())
tap.ok(locked(), "locked by a distributed guesser")
ok, evs = login(OWNER, "wrong password" + codes[0])
tap.ok(not ok and locked(), "while locked: a recovery code with a wrong password is refused",
       evs)
ok, evs = login(OWNER, PASSWORD + "bbbbbbbbbbbb")
tap.ok(not ok and reasons(evs) == [("auth", "bad_recovery")] and locked(),
       "while locked: a wrong recovery code is refused and counted", evs)
ok, evs = login(OWNER, PASSWORD + codes[1])
tap.ok(ok and reasons(evs) == [("auth", "recovery")] and not locked(),
       "while locked: password + recovery code is accepted and ends the lock", evs)
ok, evs = login(OWNER, PASSWORD + codes[1])
tap.ok(not ok, "the recovery code is used up", evs)
site.ctl("user", "unlock", "alice")
site.set("pam", "max_failures", 8)

# ------------------------- many failures from few addresses: the hard count
site.set("pam", "lock_sources", 100)
n = 0
for host in ["192.0.2.11", "192.0.2.12", "192.0.2.13"]:
    for i in range(3):
        ok, evs = login(host, PASSWORD + bad_code())
        n += 1
        if locked():
            break
    if locked():
        break
tap.eq(n, 8, "with few addresses the account locks at max_failures = 8 failures in all")
tap.ok(evs[-1].get("locked") is True, "the event says so", evs)

# ------------- IPv4 clients seen by an IPv6 socket (::ffff:a.b.c.d)
site.ctl("user", "unlock", "alice")
for i in range(3):
    ok, evs = login("::ffff:192.0.2.50", PASSWORD + bad_code())
tap.ok(evs[-1].get("throttled") is True and wait_seconds("192.0.2.50") is not None,
       "an IPv4-mapped address is counted as the IPv4 address it carries", evs)
ok, evs = login("192.0.2.50", PASSWORD + totp_code(secret))
tap.ok(not ok and reasons(evs) == [("auth", "throttled")],
       "the same IPv4 address, written plainly, waits too", evs)
wait_fresh_step(margin=5)
site.sql("UPDATE mailfort.accounts SET totp_last_step = 0 WHERE username = 'alice'")
ok, evs = login("::ffff:192.0.2.51", PASSWORD + totp_code(secret))
tap.ok(ok and reasons(evs) == [("auth", "ok")],
       "another IPv4-mapped address does not share its wait (no common ::/64 bucket)", evs)

# ------------- a mistyped password does not burn the code
site.ctl("user", "unlock", "alice")
wait_fresh_step(margin=8)
site.sql("UPDATE mailfort.accounts SET totp_last_step = 0 WHERE username = 'alice'")
code = totp_code(secret)
ok, evs = login(OWNER, "correct horse batery" + code)
tap.ok(not ok and ("authfail", "bad_password") in reasons(evs),
       "password typo + right code: refused, counted as a wrong password", evs)
ok, evs = login(OWNER, PASSWORD + code)
tap.ok(ok, "then the right password + the same code is accepted (not refused as replay)", evs)
ok, evs = login(OWNER, PASSWORD + code)
tap.ok(not ok and ("auth", "replay") in reasons(evs),
       "and that code, now used, is refused as a replay", evs)
r = site.ctl("totp", "recovery", "alice")
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
unused = "SELECT count(*) FROM mailfort.recovery_codes WHERE used_at IS NULL"
ok, evs = login(OWNER, "wrong" + codes[0])
tap.ok(not ok and site.scalar(unused) == "10",
       "password typo + recovery code: refused, the recovery code is not used up", evs)
ok, evs = login(OWNER, PASSWORD + codes[0].replace("-", " "))
tap.ok(ok and reasons(evs)[0] == ("auth", "recovery") and site.scalar(unused) == "9",
       "then the right password + the same code typed with spaces is accepted and used up",
       evs)

tap.done()
