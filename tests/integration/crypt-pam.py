#!/usr/bin/env python3
"""mailfort_crypt in password mode behind PAM and pam_mailfort, as deployed.

Dovecot's passdb is PAM (through pam_wrapper) with the pam_mailfort stack
of examples/pam.d; the login password reaches the mail process as the
passdb field userdb_mailfort_crypt_password=%w, as in
examples/dovecot/conf.d/90-mailfort-crypt.conf.  The key is wrapped under
the password alone.  Covers: delivery needs only the public key; IMAP and
POP3 login with password+TOTP code read the mail decrypted (the code is
not part of the wrap), and so does a login with password+recovery code; APPEND then FETCH; an app password with its own
wrap (crypt app-wrap) reads mail; an app password without a wrap logs in
but gets NO for the message, no plaintext, and the failing unwrap is not
tried again for every message; a wrong code, a replayed code
and the password alone are refused; the password is never logged;
deliveries try no unwrap (the field exists only after a login).
"""
import imaplib
import os
import poplib
import random
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup, totp_code, wait_fresh_step  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, maildir_files  # noqa: E402

ANNA = "anna@example.test"
PASSWORD = "Winter 2026?"


def message(subject, body):
    return ("From: a@example.test\r\nTo: anna@example.test\r\nSubject: %s\r\n"
            "Message-ID: <%08x@example.test>\r\n\r\n%s" % (subject, random.getrandbits(32), body)
            ).encode()


def imap_read(password, uids=("1",)):
    """Log in and FETCH BODY[] of uids: (login_ok, [(typ, body)], error text)."""
    m = dc.imap()
    try:
        m.login(ANNA, password)
    except imaplib.IMAP4.error as e:
        try:
            m.shutdown()
        except OSError:
            pass
        return False, [], str(e)
    out = []
    try:
        m.select("INBOX")
        for uid in uids:
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
            parts = [p[1] for p in data if isinstance(p, tuple)] if data else []
            out.append((typ, parts[0] if parts else None))
        m.logout()
    except (imaplib.IMAP4.error, OSError) as e:
        out.append(("BYE", str(e)))
    return True, out, ""


def wait_log(text, timeout=5):
    """The Dovecot log once it holds text (its log process writes a little later)."""
    end = time.time() + timeout
    while True:
        log = dc.log_text()
        if text in log or time.time() > end:
            return log
        time.sleep(0.1)


def fresh_code():
    """A code for the current step that pam_mailfort will accept (steps are
    accepted once: the test forgets the last one used)."""
    pam.reset_step(ANNA)
    wait_fresh_step(margin=6)
    return totp_code(secret)


site = Site("crypt_pam", extra={"crypt": {"mode": "password"}})
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
pam = PamSetup(site, passwords={ANNA: PASSWORD})
pam.mail_stack("imap")
pam.mail_stack("pop3")
secret = pam.enroll(ANNA)
r = site.ctl("crypt", "init", ANNA, "--mode", "password", input=PASSWORD + "\n")
tap.ok(r.returncode == 0, "crypt init: anna's key wrapped under her password (no code)", r.stderr)

dc = Dovecot("cpam", site=site, plugins=["mailfort_crypt"], pam_service="%s", pam_dir=pam.services,
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w",
             extra="auth_failure_delay = 0\nimap_fetch_failure = no-after\n")
# the mail processes (mail user) look up app-password wraps by keyed hash
dc.own_keys(site)
dc.start()

marker = "MFPAM%08x" % random.getrandbits(32)
msg = message("for anna %s" % marker, "password mode through PAM %s\r\n" % marker)
tap.eq(dc.lmtp_deliver("a@example.test", [ANNA], msg), {}, "LMTP delivery (public key only)")
files = maildir_files(dc.home("anna"))
ok = len(files) == 1
for p in files:
    with open(p, "rb") as f:
        data = f.read()
    ok = ok and data.startswith(MAGIC) and marker.encode() not in data
tap.ok(ok, "stored as ciphertext without the marker")

# ---------------------------------------------------------------- password + code
code = fresh_code()
ok, got, why = imap_read(PASSWORD + code)
tap.ok(ok, "IMAP login through PAM with password+code", why + dc.log_text()[-1500:])
tap.ok(got and got[0][0] == "OK" and got[0][1] is not None and got[0][1].endswith(msg),
       "the message is decrypted: the code was not part of the wrapping secret",
       [(t, None if b is None else b[:80]) for t, b in got])
ev = pam.events()
tap.ok(ev and ev[-1].get("result") == "ok" and ev[-1].get("protocol") == "imap",
       "pam_mailfort recorded the login", ev[-1:] if ev else ev)

ok, got, why = imap_read(PASSWORD + code)
tap.ok(not ok and "AUTHENTICATIONFAILED" in why.upper(), "the same code again is refused", why)
wrong = "%06d" % ((int(code) + 7) % 1000000)
ok, got, why = imap_read(PASSWORD + wrong)
tap.ok(not ok and got == [], "a wrong code: login refused, nothing read", why)
ok, got, why = imap_read(PASSWORD)
tap.ok(not ok, "the password alone is refused", why)

# password + recovery code (phone lost): pam_mailfort accepts it once, and
# the recovery code is no more part of the wrap than the TOTP code
r = site.ctl("totp", "recovery", ANNA)
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
tap.eq(len(codes), 10, "ten recovery codes issued")
for what, rc in (("with dashes", codes[0] if codes else ""),
                 ("without dashes", codes[1].replace("-", "") if len(codes) > 1 else "")):
    ok, got, why = imap_read(PASSWORD + rc)
    tap.ok(ok and got and got[0][0] == "OK" and got[0][1] is not None and got[0][1].endswith(msg),
           "login with password+recovery code (%s) reads the message" % what,
           why + repr([(t, None if b is None else b[:60]) for t, b in got]))

# APPEND then FETCH in the same kind of session
appended = message("appended %s" % marker, "x" * 150000 + "\r\n")
m = dc.imap()
try:
    m.login(ANNA, PASSWORD + fresh_code())
    m.select("INBOX")
    typ, data = m.append("INBOX", None, None, appended)
    uid = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    typ, data = m.uid("FETCH", uid.group(1).decode() if uid else "2", "(BODY.PEEK[])")
    parts = [p[1] for p in data if isinstance(p, tuple)]
    m.logout()
except (imaplib.IMAP4.error, OSError) as e:
    parts = [str(e)]
tap.ok(parts and parts[0] == appended, "APPEND then FETCH byte-identical (150 KB)",
       repr(parts)[:200])

# POP3 with password+code
p = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=30)
try:
    p.user(ANNA)
    p.pass_(PASSWORD + fresh_code())
    _resp, lines, _octets = p.retr(1)
    p.quit()
    got = b"\r\n".join(lines) + b"\r\n"
except poplib.error_proto as e:
    got = str(e).encode()
tap.ok(got.endswith(msg), "POP3 login with password+code: RETR returns the plaintext", got[:200])

# ---------------------------------------------------------------- app passwords
r = site.ctl("-q", "apppass", "add", ANNA, "--label", "phone", "--protocols", "imap")
app = r.stdout.strip()
tap.ok(r.returncode == 0 and re.match(r"^[a-z0-9]{4}(-[a-z0-9]{4}){4}$", app or ""),
       "an app password for IMAP", r.stdout + r.stderr)
r = site.ctl("crypt", "app-wrap", ANNA, "phone", input="%s\n%s\n" % (PASSWORD, app))
tap.ok(r.returncode == 0, "crypt app-wrap: the key wrapped under the app password too", r.stderr)
ok, got, why = imap_read(app, uids=("1", "2"))
tap.ok(ok and len(got) == 2 and got[0][0] == "OK" and got[0][1] is not None
       and got[0][1].endswith(msg) and got[1][1] == appended,
       "login with the app password reads both messages",
       why + repr([(t, None if b is None else len(b)) for t, b in got]))
tap.eq(pam.events()[-1].get("reason"), "apppass", "recorded as an app password login")

r = site.ctl("-q", "apppass", "add", ANNA, "--label", "tablet", "--protocols", "imap")
app2 = r.stdout.strip()
ok, got, why = imap_read(app2, uids=("1", "2"))
tap.ok(ok, "an app password without a wrap still logs in", why)
tap.ok(got and all(t != "OK" or b is None for t, b in got)
       and not any(isinstance(b, bytes) and marker.encode() in b for _t, b in got),
       "but gets no message: NO, no plaintext",
       repr([(t, None if b is None else b[:60]) for t, b in got]))
# each unwrap try is an Argon2id run: a session whose password does not
# unwrap the key pays for it once, not again for every message it reads
for i in range(5):
    dc.lmtp_deliver("a@example.test", [ANNA], message("more %d" % i, "more\r\n"))
m = dc.imap()
m.login(ANNA, app2)
m.select("INBOX")
t0 = time.time()
first = m.uid("FETCH", "1", "(BODY.PEEK[])")[0]
t1 = time.time()
later = [m.uid("FETCH", str(uid), "(BODY.PEEK[])")[0] for uid in range(2, 8)]
t2 = time.time()
m.logout()
tap.ok(first == "NO" and later == ["NO"] * 6 and (t2 - t1) < (t1 - t0),
       "six more failing FETCHes take less time than the first (no new unwrap tries)",
       "first %s %.3f s, then %s %.3f s" % (first, t1 - t0, later, t2 - t1))
log = wait_log("does not unwrap with the login password")
tap.ok(re.search(r"imap\(anna@example\.test\).*UID=1: mailfort_crypt: .*does not unwrap with "
                 r"the login password", log) is not None,
       "the log says why, naming the account and the message")

# ---------------------------------------------------------------- the log
# Dovecot's delivery code reads Message-ID, Subject and From back from the
# just saved mail; the plugin answers from the plaintext it saved, so lmtp
# (no login password) neither fails nor tries to unwrap anything.
deliveries = [ln for ln in log.splitlines() if " lmtp(" in ln and "mailfort_crypt" in ln]
tap.eq(deliveries, [], "deliveries need no key and log nothing about one")
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
for what, s in (("password", PASSWORD), ("app password", app), ("second app password", app2),
                ("marker", marker)):
    tap.ok(s not in log, "the log does not contain the %s" % what)
dc.stop()
tap.done()
