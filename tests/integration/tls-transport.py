#!/usr/bin/env python3
"""TLS by default, as the examples ship it, against a throwaway CA.

Dovecot with ssl = required and no plaintext authentication, Postfix with
STARTTLS on port 25, TLS required on submission and AUTH only under TLS,
mailfort-milter and mailfort-auditd.  Clients verify the server against the
test CA, as a real mail client does.  The attacker is a client on the
network (127.0.0.2, not the server's own address, which Dovecot counts as
secured):
  - IMAP LOGIN over port 143 without STARTTLS is refused, and so is
    AUTHENTICATE PLAIN; after STARTTLS the same login works;
  - SMTP AUTH is not offered before STARTTLS on submission, and mail is
    refused there without TLS;
  - the login event says the session was under TLS, and Dovecot's login
    line with the same session id names protocol and cipher; the milter's verdict
    names the TLS protocol and cipher the client negotiated for a STARTTLS
    session, and "none" for a plain one.
"""
import imaplib
import os
import re
import smtplib
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, tap  # noqa: E402
from auditlib import Auditd, events  # noqa: E402
from milterlib import Milter  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402
from tlslib import TestCA  # noqa: E402

OUTSIDE = "127.0.0.2"
USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}

site = Site("tls", extra={"milter": {"spam": "no"}, "spool": {"node": "tls1"}})
ca = TestCA(os.path.join(TMP, "ca"))
auditd = Auditd(site)
milter = Milter(site)
auditd.start()
milter.start()
dc = Dovecot("tls", site=site, plugins=["notify", "mailfort_audit"],
             imap_plugins=["imap_mailfort_audit"], users=USERS, tls=ca).start()
pf = Postfix("tls", dovecot=dc, milter="inet:127.0.0.1:%d" % milter.port, tls=ca).start()

# ---------------------------------------------------------------- IMAP
m = dc.imap(starttls=False, source=OUTSIDE)
caps = m.capabilities
tap.ok("LOGINDISABLED" in caps and "STARTTLS" in caps,
       "port 143 without TLS advertises STARTTLS and LOGINDISABLED", caps)
try:
    m.login("alice", USERS["alice"])
    refused = None
except imaplib.IMAP4.error as e:
    refused = str(e)
tap.ok(refused is not None, "a plaintext LOGIN without STARTTLS is refused", refused)
try:
    m.authenticate("PLAIN", lambda _: b"\0alice\0" + USERS["alice"].encode())
    refused = None
except imaplib.IMAP4.error as e:
    refused = str(e)
tap.ok(refused is not None, "AUTHENTICATE PLAIN without STARTTLS is refused too", refused)
m.shutdown()

m = dc.imap(source=OUTSIDE)
version, cipher = m.sock.version(), m.sock.cipher()[0]
typ, _ = m.login("alice", USERS["alice"])
tap.eq(typ, "OK", "after STARTTLS (server verified against the CA) the same login works")
tap.ok(version in ("TLSv1.2", "TLSv1.3"), "the session uses TLS 1.2 or later", version)
m.logout()

try:
    dc.imap(starttls=False, source=OUTSIDE).starttls(ssl_context=ssl.create_default_context())
    untrusted = "verified"
except Exception as e:  # noqa: BLE001 - any verification failure will do
    untrusted = type(e).__name__
tap.ok(untrusted != "verified", "a client that does not trust the CA refuses the server", untrusted)

# ---------------------------------------------------------------- SMTP


def message(subject):
    return ("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\nhello\r\n" % (subject, subject)).encode()


def send(s, subject):
    """MAIL, RCPT, DATA on an open session; returns Postfix's queue id."""
    s.ehlo_or_helo_if_needed()
    s.mail("alice@example.test")
    s.rcpt("bob@example.test")
    code, reply = s.data(message(subject))
    found = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
    return code, found.group(1).decode() if found else None


s = pf.smtp(source=OUTSIDE)
code, qid_plain = send(s, "plain-session")
s.quit()
tap.ok(code == 250 and qid_plain, "a plain session on port 25 is accepted (opportunistic TLS)",
       (code, qid_plain))

s = pf.smtp(starttls=True, source=OUTSIDE)
smtp_version, smtp_cipher = s.sock.version(), s.sock.cipher()[0]
code, qid_tls = send(s, "starttls-session")
s.quit()
tap.ok(code == 250 and qid_tls, "a STARTTLS session on port 25 is accepted", (code, qid_tls))

s = pf.smtp(submission=True, starttls=False, source=OUTSIDE)
s.ehlo()
tap.ok("auth" not in s.esmtp_features and "starttls" in s.esmtp_features,
       "submission offers STARTTLS and no AUTH before TLS", s.esmtp_features)
try:
    s.mail("alice@example.test")
    code = s.rcpt("bob@example.test")[0]
except smtplib.SMTPException as e:
    code = getattr(e, "smtp_code", str(e))
tap.ok(code != 250, "submission refuses mail without TLS", code)
s.close()

s = pf.smtp(submission=True, source=OUTSIDE)
s.login("bob", USERS["bob"])
code, qid_sub = send(s, "submission-session")
s.quit()
tap.ok(code == 250 and qid_sub, "after STARTTLS, AUTH and submission work", (code, qid_sub))

# ---------------------------------------------------------------- records
want = 3
deadline = time.time() + 60
rows = []
while time.time() < deadline:
    rows = site.sql("SELECT queue_id, tls, coalesce(tls_cipher, '') FROM audit.mail_verdicts")
    if len(rows) >= want:
        break
    time.sleep(0.3)
verdicts = {r[0]: (r[1], r[2]) for r in rows}
tap.eq(verdicts.get(qid_plain), ("none", ""), "the verdict of the plain session says tls none")
tap.eq(verdicts.get(qid_tls), (smtp_version, smtp_cipher),
       "the verdict of the STARTTLS session names the protocol and cipher the client negotiated")
tap.eq(verdicts.get(qid_sub), (smtp_version, smtp_cipher),
       "the verdict of the submission session names its protocol and cipher")

logins = []
deadline = time.time() + 30
while time.time() < deadline:
    logins = [e for e in events(site, "type = 'login'") if e.get("service") == "imap"]
    if logins:
        break
    time.sleep(0.3)
tap.ok(len(logins) == 1 and logins[0].get("tls") is True and logins[0].get("ip") == OUTSIDE,
       "the login event records the session as TLS-protected", logins)
rows = site.sql("SELECT tls::text FROM audit.logins WHERE type = 'login'")
tap.eq([tuple(r) for r in rows], [("true",)], "audit.logins shows tls for it")
# The protocol and cipher: Dovecot's login line of the same session (%k in
# the shipped login_log_format_elements), joined on the event's session id.
session = logins[0].get("session") if logins else None
line = [ln for ln in dc.log_text().splitlines()
        if "Login: user=<alice>" in ln and session and "session=<%s>" % session in ln]
tap.ok(len(line) == 1 and ("%s with cipher %s" % (version, cipher)) in line[0],
       "Dovecot's login line with the event's session id names the TLS protocol and cipher "
       "the client negotiated", (session, version, cipher, line or dc.log_text()[-1500:]))
tap.done()
