#!/usr/bin/env python3
"""pam_mailfort through pam_wrapper against a real PostgreSQL.

Stacks as in examples/pam.d (app passwords first, password+code, a password
module that checks exactly the PAM_AUTHTOK handed on, authfail, authsucc).
Covers: right code, wrong code, replay, 20 concurrent logins with one code,
window edges, lockout (doubling) and unlock, locked refused before the
password is checked, app passwords (accepted, revoked, wrong protocol, last
use), recovery codes once, not-enrolled under both policies, prompt mode,
database down or blackholed -> PAM_AUTHINFO_UNAVAIL within the timeout,
unsafe key file, and the auth event of every attempt (never a secret).
"""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, free_port, tap  # noqa: E402
from mfpam import (PAM_TEXT, PAM_WRAPPER_MODULES, PamSetup, oathtool_code, spool_bytes, totp_code,  # noqa: E402
                   uri_secret, wait_fresh_step)

PASSWORDS = {"alice": "Sommer 2026!", "bob": "pw-bob", "carol": "pw-carol",
             "dave": "pw-dave", "erin": "pw-erin", "frank": "pw-frank"}

# every login here comes from one address: its waits (pam-throttle.py) are
# kept out of the way of the lock and replay checks
site = Site("pam-module", extra={"pam": {"max_failures": 10, "lockout_seconds": 2,
                                         "lockout_max_seconds": 60, "throttle_after": 100}})
pam = PamSetup(site, passwords=PASSWORDS)
pam.mail_stack("smtp")
pam.prompt_stack("sshd")
secrets_used = set(PASSWORDS.values())


def new_events(n0):
    return pam.events()[n0:]


def attempt(what, service, user, answers, want_ok, want_events, want_msg=None):
    """One login; checks the outcome and exactly the events it appended."""
    for a in answers:
        secrets_used.add(a)
    n0 = len(pam.events())
    ok, msg = pam.auth(service, user, *answers)
    tap.ok(ok == want_ok, what, msg)
    if want_msg is not None:
        tap.eq(msg, "pamtester: " + PAM_TEXT[want_msg], what + ": " + want_msg)
    got = [(e.get("mode"), e.get("result"), e.get("reason")) for e in new_events(n0)]
    tap.eq(got, want_events, what + ": auth events")
    return ok


# ------------------------------------------------------------ enrolment
r = site.ctl("totp", "enroll", "alice")
label, q = uri_secret(r.stdout)
tap.ok(r.returncode == 0 and label == "mailfort:alice" and len(q.get("secret", "")) == 32
       and q.get("digits") == "6" and q.get("period") == "30" and q.get("issuer") == "mailfort",
       "totp enroll prints an otpauth URI with a 160-bit secret", r.stdout + r.stderr)
tap.ok("\u2588" in r.stdout, "and draws a QR code")
tap.ok("pending" in r.stdout, "and leaves the enrolment pending without a terminal")
secret_a = q["secret"]
r = site.ctl("totp", "status", "alice")
tap.ok(re.search(r"state:\s+pending", r.stdout), "status: pending", r.stdout)
wait_fresh_step(margin=10)
attempt("pending enrolment counts as not enrolled", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "fail", "not_enrolled")])
r = site.ctl("totp", "enroll", "alice", "--confirm", "000000" if totp_code(secret_a) != "000000" else "111111")
tap.ok(r.returncode == 1 and "does not match" in r.stderr, "a wrong confirmation code is refused",
       r.stderr)
r = site.ctl("totp", "enroll", "alice", "--confirm", totp_code(secret_a))
tap.ok(r.returncode == 0 and "active" in r.stdout, "--confirm with a valid code activates",
       r.stdout + r.stderr)
r = site.ctl("totp", "enroll", "alice", "--no-qr")
tap.ok(r.returncode == 1 and "--force" in r.stderr, "an enrolled account is not re-enrolled silently")
attempt("the confirmation code cannot be used again to log in", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "fail", "replay")])
pam.reset_step("alice")

# ------------------------------------------------------------ right, wrong, replay
wait_fresh_step()
code = totp_code(secret_a)
calls = pam.calls()
attempt("password+code accepted", "imap", "alice", [PASSWORDS["alice"] + code], True,
        [("auth", "ok", "ok")])
tap.eq(pam.calls(), calls + 1, "the password module checked the password without the code")
attempt("the same code again is a replay", "imap", "alice", [PASSWORDS["alice"] + code], False,
        [("auth", "fail", "replay")])
tap.eq(pam.calls(), calls + 1, "a replay is refused before the password is checked")
wrong = "%06d" % ((int(code) + 1) % 1000000)
attempt("wrong code refused", "imap", "alice", [PASSWORDS["alice"] + wrong], False,
        [("auth", "fail", "bad_code")])
attempt("no code at all refused", "imap", "alice", [PASSWORDS["alice"]], False,
        [("auth", "fail", "no_code")])
tap.eq(pam.account("alice")[0], "3", "three failures counted")
pam.reset_step("alice")
attempt("right code, wrong password: refused by the password module", "imap", "alice",
        ["wrong password" + code], False, [("auth", "ok", "ok"), ("authfail", "fail", "bad_password")])
tap.eq(pam.account("alice")[0], "4", "authfail counted the bad password")
pam.reset_step("alice")
attempt("a success through authsucc", "imap", "alice", [PASSWORDS["alice"] + code], True,
        [("auth", "ok", "ok")])
tap.eq(pam.account("alice")[0], "0", "a success resets the failure count")

# ------------------------------------------------------------ window edges
pam.reset_step("alice")
wait_fresh_step(margin=15)  # the five attempts below must share one step
now = time.time()
for delta, want in ((-2, False), (2, False), (-1, True), (1, True)):
    c = oathtool_code(secret_a, now + 30 * delta)
    if want:
        attempt("window: step %+d accepted" % delta, "imap", "alice", [PASSWORDS["alice"] + c],
                True, [("auth", "ok", "ok")])
    else:
        attempt("window: step %+d refused" % delta, "imap", "alice", [PASSWORDS["alice"] + c],
                False, [("auth", "fail", "bad_code")])
c = oathtool_code(secret_a, now)
attempt("after step +1 was used, the current step is a replay", "imap", "alice",
        [PASSWORDS["alice"] + c], False, [("auth", "fail", "replay")])

# ------------------------------------------------------------ the race
secret_b = pam.enroll("bob")
site.set("pam", "max_failures", 100)  # 19 replays must not lock bob here
wait_fresh_step(margin=12)
code = totp_code(secret_b)
n0 = len(pam.events())
started = [pam.start("imap", "bob", PASSWORDS["bob"] + code) for _ in range(20)]
results = []
for p, answer in started:
    out, _ = p.communicate(answer, timeout=60)
    results.append(p.returncode == 0)
tap.eq(results.count(True), 1, "20 concurrent logins with one valid code: exactly one succeeds")
evs = [(e["result"], e["reason"]) for e in new_events(n0)]
tap.eq(sorted(evs), sorted([("ok", "ok")] + [("fail", "replay")] * 19),
       "one ok and 19 replay events")


# ------------------------------------------------------------ lockout
site.set("pam", "max_failures", 3)
secret_c = pam.enroll("carol")
wait_fresh_step()
bad = "%06d" % ((int(totp_code(secret_c)) + 5) % 1000000)
for i in range(2):
    attempt("carol: bad code %d" % (i + 1), "imap", "carol", [PASSWORDS["carol"] + bad], False,
            [("auth", "fail", "bad_code")])
n0 = len(pam.events())
attempt("carol: bad code 3 locks", "imap", "carol", [PASSWORDS["carol"] + bad], False,
        [("auth", "fail", "bad_code")])
tap.ok(new_events(n0)[-1].get("locked") is True, "the locking failure's event says locked")
tap.eq(pam.account("carol")[1], "t", "account locked after max_failures")
calls = pam.calls()
attempt("locked: the right password and code are refused", "imap", "carol",
        [PASSWORDS["carol"] + totp_code(secret_c)], False, [("auth", "fail", "locked")])
tap.eq(pam.calls(), calls, "locked: refused before the password is checked")
attempt("locked: prompt stack refuses before the password", "sshd", "carol",
        [PASSWORDS["carol"], totp_code(secret_c)], False, [("preauth", "fail", "locked")])
tap.eq(pam.calls(), calls, "locked: sshd stack did not check the password either")
pam.write_service("sshkey", ["auth required /lib/x86_64-linux-gnu/security/pam_permit.so",
                             "account optional %s/pam_set_items.so" % PAM_WRAPPER_MODULES,
                             "account requisite %s" % pam.mf(),
                             "account required /lib/x86_64-linux-gnu/security/pam_permit.so"])
n0 = len(pam.events())
ok, msg = pam.acct("sshkey", "carol")
tap.ok(not ok and "Permission denied" in msg,
       "locked: the account phase refuses too (logins by ssh key)", msg)
tap.eq([(e["mode"], e["reason"]) for e in new_events(n0)], [("account", "locked")],
       "recorded as a locked attempt in the account phase")
ok, msg = pam.acct("sshkey", "alice")
tap.ok(ok, "the account phase lets an unlocked account through", msg)
r = site.ctl("user", "status", "carol")
tap.ok(r.returncode == 0 and re.search(r"locked:\s+yes", r.stdout), "user status shows the lock",
       r.stdout + r.stderr)
# doubling: wait for the 2 s lock to pass, fail again: 4 s
time.sleep(2.3)
for i in range(3):
    pam.auth("imap", "carol", PASSWORDS["carol"] + bad)
secs = float(pam.account("carol", "extract(epoch from locked_until - last_failure_at)")[0])
tap.ok(3.5 < secs < 4.5, "the second lock lasts twice as long (%.1f s)" % secs)
r = site.ctl("user", "unlock", "carol")
tap.ok(r.returncode == 0, "user unlock", r.stderr)
tap.eq(pam.account("carol"), ["0", "f"], "unlocked, count reset")
attempt("after unlock the right code works", "imap", "carol",
        [PASSWORDS["carol"] + totp_code(secret_c)], True, [("auth", "ok", "ok")])
r = site.ctl("user", "unlock", "nobody")
tap.ok(r.returncode == 1 and "no account" in r.stderr, "unlock of an unknown user fails clearly")
site.set("pam", "max_failures", 10)

# ------------------------------------------------------------ app passwords
r = site.ctl("apppass", "add", "erin", "--label", "Thunderbird, office PC")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
tap.ok(r.returncode == 0 and m, "apppass add prints a password in five groups", r.stdout + r.stderr)
ap = m.group(1) if m else "x"
secrets_used.add(ap)
calls = pam.calls()
attempt("app password accepted", "imap", "erin", [ap], True, [("apppass", "ok", "apppass")])
tap.eq(pam.calls(), calls, "the app password is not sent to the password module")
attempt("app password typed in upper case without dashes", "imap", "erin",
        [ap.replace("-", "").upper()], True, [("apppass", "ok", "apppass")])
row = site.sql("SELECT last_used_at IS NOT NULL, host(last_used_ip) FROM mailfort.app_passwords "
               "WHERE label = 'Thunderbird, office PC'")
tap.eq(row, [["t", "192.0.2.7"]], "last use recorded with the remote address")
r = site.ctl("apppass", "list", "erin")
tap.ok("Thunderbird, office PC" in r.stdout and "192.0.2.7" in r.stdout and ap not in r.stdout,
       "apppass list shows label and last use, never the password", r.stdout)
r = site.ctl("apppass", "revoke", "erin", "Thunderbird, office PC")
tap.ok(r.returncode == 0, "apppass revoke", r.stderr)
attempt("revoked app password refused", "imap", "erin", [ap], False,
        [("apppass", "fail", "apppass_revoked")])
r = site.ctl("apppass", "add", "erin", "--label", "phone", "--protocols", "smtp")
ap2 = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout).group(1)
secrets_used.add(ap2)
attempt("app password for smtp refused over imap", "imap", "erin", [ap2], False,
        [("apppass", "fail", "apppass_protocol")])
attempt("and accepted over smtp", "smtp", "erin", [ap2], True, [("apppass", "ok", "apppass")])
r = site.ctl("apppass", "add", "erin", "--label", "x", "--protocols", "imap,bad\"one")
tap.ok(r.returncode == 1 and "not allowed" in r.stderr, "a bad protocol list is refused", r.stderr)
r = site.ctl("apppass", "add", "erin", "--label", "phone")
tap.ok(r.returncode == 1 and "already" in r.stderr, "labels are unique per user", r.stderr)
n0 = len(pam.events())
ok, msg = pam.auth("smtp", "alice", ap2)
evs = [(e["mode"], e["result"]) for e in new_events(n0)]
tap.ok(not ok and evs == [("auth", "fail")], "another user cannot use erin's app password",
       "%s %s" % (msg, evs))
# revoke LABEL|ID: a label that looks like another app password's id revokes only itself
phone_id = site.scalar("SELECT id FROM mailfort.app_passwords WHERE label = 'phone'")
site.ctl("apppass", "add", "erin", "--label", phone_id, check=True)
r = site.ctl("apppass", "revoke", "erin", phone_id)
tap.eq(site.sql("SELECT label, revoked_at IS NOT NULL FROM mailfort.app_passwords "
                "WHERE label IN ('phone', :'l') ORDER BY label", params={"l": phone_id}),
       sorted([[phone_id, "t"], ["phone", "f"]]),
       "revoke by a label that is also an id revokes only the labelled one")

# ------------------------------------------------------------ recovery codes
r = site.ctl("totp", "recovery", "alice")
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
tap.eq(len(codes), 10, "totp recovery issues 10 codes")
secrets_used.update(codes)
attempt("a recovery code in place of the TOTP code works", "imap", "alice",
        [PASSWORDS["alice"] + codes[0]], True, [("auth", "ok", "recovery")])
attempt("the same recovery code does not work twice", "imap", "alice",
        [PASSWORDS["alice"] + codes[0]], False, [("auth", "fail", "bad_recovery")])
attempt("a recovery code typed without dashes", "imap", "alice",
        [PASSWORDS["alice"] + codes[1].replace("-", "")], True, [("auth", "ok", "recovery")])
r = site.ctl("totp", "status", "alice")
tap.ok(re.search(r"recovery codes:\s+8 unused", r.stdout), "status counts 8 unused", r.stdout)

r = site.ctl("totp", "reset", "bob")
tap.ok(r.returncode == 0 and "removed" in r.stdout, "totp reset", r.stdout + r.stderr)
attempt("after totp reset the old code no longer works", "imap", "bob",
        [PASSWORDS["bob"] + totp_code(secret_b)], False, [("auth", "fail", "not_enrolled")])
r = site.ctl("totp", "status", "bob")
tap.ok(re.search(r"state:\s+none", r.stdout), "status after reset: none", r.stdout)
r = site.ctl("apppass", "list", "nobody")
tap.ok(r.returncode == 1 and "no account 'nobody'" in r.stderr, "unknown user named", r.stderr)
r = site.ctl("totp", "bogus", "bob")
tap.eq(r.returncode, 2, "unknown totp command is a usage error")

# ------------------------------------------------------------ not enrolled
calls = pam.calls()
attempt("not enrolled, policy require: refused", "imap", "dave", [PASSWORDS["dave"]], False,
        [("auth", "fail", "not_enrolled")])
tap.eq(pam.calls(), calls, "not enrolled (require): password not even checked")
site.set("pam", "not_enrolled", "allow")
attempt("not enrolled, policy allow: the password alone works", "imap", "dave",
        [PASSWORDS["dave"]], True, [("auth", "ok", "not_enrolled")])
attempt("not enrolled, policy allow: a wrong password is still refused", "imap", "dave",
        ["nope"], False, [("auth", "ok", "not_enrolled"), ("authfail", "fail", "bad_password")])
site.set("pam", "not_enrolled", "require")

# ------------------------------------------------------------ prompt mode
pam.reset_step("alice")
wait_fresh_step()
attempt("prompt mode: password, then the code asked for", "sshd", "alice",
        [PASSWORDS["alice"], totp_code(secret_a)], True, [("auth", "ok", "ok")])
attempt("prompt mode: wrong code refused", "sshd", "alice",
        [PASSWORDS["alice"], wrong], False, [("auth", "fail", "bad_code")])
attempt("prompt mode: a recovery code at the prompt", "sshd", "alice",
        [PASSWORDS["alice"], codes[3]], True, [("auth", "ok", "recovery")])
attempt("prompt mode: wrong password counted by authfail", "sshd", "alice",
        ["nope", totp_code(secret_a)], False, [("authfail", "fail", "bad_password")])

# ------------------------------------------------------------ faults fail closed
pam.reset_step("alice")
closed = free_port()
site.set("pam", "conninfo", "host=127.0.0.1 port=%d dbname=x user=postgres" % closed)
t0 = time.time()
attempt("database refusing connections: PAM_AUTHINFO_UNAVAIL", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "error", "db_unavailable")],
        want_msg="PAM_AUTHINFO_UNAVAIL")
tap.ok(time.time() - t0 < 3, "and at once (%.2f s)" % (time.time() - t0))
ok, msg = pam.acct("sshkey", "alice")
tap.ok(not ok and "Permission denied" in msg, "account phase without database: refused", msg)

hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(16)  # never accepts, never answers
site.set("pam", "conninfo", "host=127.0.0.1 port=%d dbname=x user=postgres" % hole.getsockname()[1])
site.set("database", "connect_timeout", 2)
t0 = time.time()
attempt("database not answering: PAM_AUTHINFO_UNAVAIL", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "error", "db_unavailable")],
        want_msg="PAM_AUTHINFO_UNAVAIL")
took = time.time() - t0
tap.ok(took < 2 + 1.5, "within the 2 s connect timeout (%.2f s)" % took)
hole.close()
del site.sections["pam"]["conninfo"]
site.set("database", "connect_timeout", 3)

totp_key = os.path.join(site.keys, "totp.key")
os.chmod(totp_key, 0o644)
attempt("TOTP key readable by others: PAM_AUTHINFO_UNAVAIL", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "error", "key_unavailable")],
        want_msg="PAM_AUTHINFO_UNAVAIL")
os.chmod(totp_key, 0o600)
hash_key = os.path.join(site.keys, "hash.key")
os.chmod(hash_key, 0o644)
attempt("hash key readable by others: app passwords fail closed", "smtp", "erin", [ap2], False,
        [("apppass", "error", "key_unavailable")], want_msg="PAM_AUTHINFO_UNAVAIL")
os.chmod(hash_key, 0o600)
os.rename(totp_key, totp_key + ".away")
attempt("TOTP key missing: PAM_AUTHINFO_UNAVAIL", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "error", "key_unavailable")],
        want_msg="PAM_AUTHINFO_UNAVAIL")
os.rename(totp_key + ".away", totp_key)
with open(site.conf, "a") as f:
    f.write("[pam]\nmax_failures = ten\n")
ok, msg = pam.auth("imap", "alice", PASSWORDS["alice"] + totp_code(secret_a))
tap.ok(not ok and PAM_TEXT["PAM_AUTHINFO_UNAVAIL"] in msg, "a broken config fails closed", msg)
site.write()
attempt("and everything works again afterwards", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], True, [("auth", "ok", "ok")])

site.stop_spoold()
pam.reset_step("alice")
ok, msg = pam.auth("imap", "alice", PASSWORDS["alice"] + totp_code(secret_a))
tap.ok(not ok and PAM_TEXT["PAM_AUTHINFO_UNAVAIL"] in msg,
       "no login without its audit record: no event receiver -> PAM_AUTHINFO_UNAVAIL", msg)
site.start_spoold()

# a receiver that takes the event but never answers (hung disk, stopped
# process): the login fails closed within [spool] submit_timeout_ms
hung_path = os.path.join(site.dir, "hung.sock")
hung = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
hung.bind(hung_path)
hung.listen(8)
site.set("spool", "socket", hung_path)
site.set("spool", "submit_timeout_ms", 700)
pam.reset_step("alice")
t0 = time.time()
ok, msg = pam.auth("imap", "alice", PASSWORDS["alice"] + totp_code(secret_a))
took = time.time() - t0
tap.ok(not ok and PAM_TEXT["PAM_AUTHINFO_UNAVAIL"] in msg and 0.6 < took < 5,
       "a receiver that does not answer: PAM_AUTHINFO_UNAVAIL after the timeout (%.2f s)" % took,
       msg)
hung.close()
site.set("spool", "socket", site.socket)
del site.sections["spool"]["submit_timeout_ms"]
site.write()

# ------------------------------------------------------------ least privilege
# The module needs nothing beyond the mailfort_pam group role.
site.pg.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_pamtest') "
             "THEN CREATE ROLE mf_pamtest LOGIN; END IF; END$$; GRANT mailfort_pam TO mf_pamtest;")
site.set("pam", "conninfo", site.pg.conninfo(site.db, user="mf_pamtest"))
pam.reset_step("alice")
wait_fresh_step()
attempt("as a role with only mailfort_pam: password+code", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], True, [("auth", "ok", "ok")])
attempt("as mailfort_pam: replay refused and counted", "imap", "alice",
        [PASSWORDS["alice"] + totp_code(secret_a)], False, [("auth", "fail", "replay")])
attempt("as mailfort_pam: recovery code", "imap", "alice", [PASSWORDS["alice"] + codes[2]], True,
        [("auth", "ok", "recovery")])
attempt("as mailfort_pam: app password with last use", "smtp", "erin", [ap2], True,
        [("apppass", "ok", "apppass")])
attempt("as mailfort_pam: a bad password counted", "imap", "alice",
        ["nope" + totp_code(secret_a, time.time() + 30)], False,
        [("auth", "ok", "ok"), ("authfail", "fail", "bad_password")])
del site.sections["pam"]["conninfo"]
site.write()

# mailfortctl needs nothing beyond mailfort_admin
site.pg.psql("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_admintest') "
             "THEN CREATE ROLE mf_admintest LOGIN; END IF; END$$; "
             "GRANT mailfort_admin TO mf_admintest;")
site.set("database", "conninfo", site.pg.conninfo(site.db, user="mf_admintest"))
r = site.ctl("totp", "enroll", "gina", "--no-qr")
g_secret = uri_secret(r.stdout)[1].get("secret", "")
wait_fresh_step()
steps = [r.returncode == 0,
         site.ctl("totp", "enroll", "gina", "--confirm", totp_code(g_secret)).returncode == 0]
for cmd in (("totp", "recovery", "gina"), ("apppass", "add", "gina", "--label", "l"),
            ("apppass", "list", "gina"), ("apppass", "revoke", "gina", "l"),
            ("user", "status", "gina"), ("user", "unlock", "gina"), ("totp", "reset", "gina")):
    steps.append(site.ctl(*cmd).returncode == 0)
tap.eq(steps, [True] * 9, "every totp, apppass and user command works as a mailfort_admin role")
site.set("database", "conninfo", site.pg.conninfo(site.db))

# ------------------------------------------------------------ events
evs = pam.events()
tap.ok(all(e.get("service") in ("imap", "smtp", "sshd", "sshkey") and e.get("ip") == "192.0.2.7"
           and e.get("user") in PASSWORDS for e in evs),
       "every event names user, service and remote address")
data = spool_bytes(site.spool)
leaked = [s for s in secrets_used if len(s) >= 6 and not s.isdigit() and s.encode() in data]
tap.eq(leaked, [], "no password, code or app password in the spool")
admin = [e for e in __import__("mfpam").read_events(site.spool) if e.get("type") == "admin"]
tap.ok({"totp_enroll", "user_unlock", "apppass_add", "apppass_revoke", "totp_recovery"}
       <= {e.get("action") for e in admin}, "mailfortctl actions are recorded as admin events")

tap.done()
