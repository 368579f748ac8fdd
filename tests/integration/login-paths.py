#!/usr/bin/env python3
"""Every mail login path behind the second factor, on the examples themselves.

Dovecot runs on examples/dovecot/conf.d as shipped (the harness only points
paths and ports at this instance: stack.Dovecot(examples=True)), and PAM on
examples/pam.d as shipped (module paths made absolute for pam_wrapper; the
test password module stands in for pam_unix).  For each way in:

  IMAP, POP3, Dovecot submission, ManageSieve, doveadm auth test, and SMTP
  AUTH of Postfix through Dovecot SASL

the password alone is refused, password+code is accepted, and each attempt
is one auth event naming the protocol.  TLS is on as the examples require
it (a certificate of a throwaway CA, tests/harness/tlslib.py): every client
starts TLS first, and a login without TLS is refused.  A service with no PAM file of its
own falls to examples/pam.d/other and is refused even with password+code.
Delivery through LMTP on the same configuration stores the message
encrypted (mailfort_crypt is loaded there by the examples) and the access
is audited (mailfort_audit).
"""

import base64
import imaplib
import os
import re
import smtplib
import socket
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, tap  # noqa: E402
from mfpam import PamSetup, read_events, totp_code, wait_fresh_step  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402
from cryptlib import MAGIC, maildir_files, scan_for, walk  # noqa: E402
from tlslib import TestCA  # noqa: E402

PASSWORD = "Spring 2027!"
PATHS = ["imap", "pop3", "submission", "sieve", "doveadm", "smtp"]
USERS = {p: "user-" + p for p in PATHS}

site = Site("login-paths")
# the spool as examples/dovecot/conf.d/90-mailfort-audit.conf asks for it:
# the spoold user's alone (Site makes it 0700); the mail processes reach it
# through mailfort-spoold's socket (group: the mail user's)
pam = PamSetup(site, passwords={u: PASSWORD for u in USERS.values()})
services = pam.example_services()
tap.ok({"mailfort-mail", "other"} | set(PATHS) <= set(services),
       "examples/pam.d installed: %s" % " ".join(services))
secrets = {p: pam.enroll(u) for p, u in USERS.items()}

ca = TestCA(os.path.join(TMP, "login-paths-ca"))
dc = Dovecot("paths", site=site, pam_service="%s", pam_dir=pam.services, examples=True, tls=ca)
pf = Postfix("paths", dovecot=dc, tls=ca)
dc.relay_port = pf.smtp_port
dc.own_keys(site)
dc.start()
pf.start()

r = dc.doveadm("config", "-f", "protocol=imap", "-h", "mail_plugins")
tap.ok("mailfort_crypt" in r.stdout and "imap_mailfort_audit" in r.stdout,
       "the running Dovecot loads the examples' plugins (imap: %s)" % r.stdout.strip(), r.stderr)


# ------------------------------------------------------------ the clients
def imap_login(user, password):
    m = dc.imap()
    try:
        m.login(user, password)
        m.select("INBOX")
        m.logout()
        return True, ""
    except imaplib.IMAP4.error as e:
        m.shutdown()
        return False, str(e)


def pop3_login(user, password):
    return dc.pop3_login(user, password)


def smtp_login(port, user, password):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example.test")
            s.starttls(context=ca.client_context())
            s.ehlo("client.example.test")
            s.user, s.password = user, password
            s.auth("PLAIN", s.auth_plain)  # one attempt (login() would try LOGIN next)
        return True, ""
    except (smtplib.SMTPException, OSError) as e:
        return False, str(e)


def sieve_login(user, password):
    """ManageSieve (RFC 5804): AUTHENTICATE "PLAIN", then LISTSCRIPTS."""
    with socket.create_connection(("127.0.0.1", dc.sieve_port), timeout=30) as raw:
        s, f = raw, raw.makefile("rb")

        def response():
            lines = []
            while True:
                line = f.readline()
                if not line:
                    return lines, "EOF"
                lines.append(line.decode(errors="replace").rstrip("\r\n"))
                if re.match(r'^(OK|NO|BYE)\b', lines[-1]):
                    return lines, lines[-1]
        response()  # capabilities, then OK
        s.sendall(b"STARTTLS\r\n")
        _, status = response()
        if not status.startswith("OK"):
            return False, "STARTTLS: " + status
        s = ca.client_context().wrap_socket(raw, server_hostname="localhost")
        f = s.makefile("rb")
        response()  # capabilities again, under TLS
        blob = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        s.sendall(('AUTHENTICATE "PLAIN" "%s"\r\n' % blob).encode())
        _, status = response()
        if not status.startswith("OK"):
            return False, status
        s.sendall(b"LISTSCRIPTS\r\n")
        _, status = response()
        s.sendall(b"LOGOUT\r\n")
        return status.startswith("OK"), status


def doveadm_login(user, password, service="doveadm"):
    r = dc.doveadm("auth", "test", "-x", "service=" + service, "-x", "rip=198.51.100.4",
                   user, password)
    return r.returncode == 0 and "auth succeeded" in r.stdout, (r.stdout + r.stderr).strip()


LOGIN = {
    "imap": imap_login,
    "pop3": pop3_login,
    "submission": lambda u, p: smtp_login(dc.submission_port, u, p),
    "sieve": sieve_login,
    "doveadm": doveadm_login,
    "smtp": lambda u, p: smtp_login(pf.submission_port, u, p),
}

# ------------------------------------------------- each path, both ways
for path in PATHS:
    user = USERS[path]
    n0 = len(pam.events(user=user))
    ok, why = LOGIN[path](user, PASSWORD)
    evs = pam.events(user=user)[n0:]
    tap.ok(not ok, "%s: the password alone is refused" % path, why)
    tap.ok(len(evs) == 1 and evs[0].get("result") == "fail" and evs[0].get("protocol") == path
           and evs[0].get("service") == path,
           "%s: that attempt is one failure event naming the protocol" % path, evs)

    wait_fresh_step(margin=6)
    n0 = len(pam.events(user=user))
    ok, why = LOGIN[path](user, PASSWORD + totp_code(secrets[path]))
    evs = pam.events(user=user)[n0:]
    tap.ok(ok, "%s: password+code is accepted" % path,
           why + "\n" + "\n".join(ln for ln in dc.log_text().splitlines()
                                  if "Error" in ln or "Fatal" in ln or "Panic" in ln))
    tap.ok(len(evs) == 1 and evs[0].get("result") == "ok" and evs[0].get("protocol") == path
           and evs[0].get("factor") == "totp",
           "%s: that login is one ok event naming the protocol and the code" % path, evs)

# ----------------------------- a service without its own PAM file: denied
user = USERS["imap"]
pam.reset_step(user)
wait_fresh_step(margin=6)
n0 = len(pam.events(user=user))
ok, why = doveadm_login(user, PASSWORD + totp_code(secrets["imap"]), service="nntp")
tap.ok(not ok, "a service without a PAM file (nntp) is refused by pam.d/other, even with "
       "password+code", why)
tap.eq(len(pam.events(user=user)) - n0, 0, "and never reached pam_mailfort")
ok, why = imap_login(user, PASSWORD + totp_code(secrets["imap"]))
tap.ok(ok, "the same code still works over IMAP afterwards (nothing was used up)", why)

# --------------------- delivery on the same configuration: encrypted, audited
marker = b"login-paths marker 7f3a"
msg = (b"From: a@example.test\r\nTo: %s@example.test\r\nSubject: paths\r\n"
       b"Message-ID: <paths@example.test>\r\n\r\n" % user.encode()) + marker + b"\r\n"
refused = dc.lmtp_deliver("a@example.test", user, msg)
files = maildir_files(dc.home(user))
tap.ok(not refused and files, "LMTP delivery on the examples' configuration", refused)
tap.ok(files and all(open(f, "rb").read(len(MAGIC)) == MAGIC for f in files)
       and not scan_for(walk(dc.home(user)), marker),
       "the stored message is encrypted (mailfort_crypt loaded for lmtp by the examples)")
pam.reset_step(user)  # the code of this step was used above
wait_fresh_step(margin=6)
m = dc.imap_login(user, PASSWORD + totp_code(secrets["imap"]))
m.select("INBOX")
typ, data = m.fetch("1", "(BODY[TEXT])")
m.logout()
tap.ok(typ == "OK" and marker in data[0][1], "and reads back in clear over IMAP",
       "%r\n%s" % (data, "\n".join(ln for ln in dc.log_text().splitlines() if "rror" in ln)))
logins = [e for e in read_events(site.spool) if e.get("type") == "login"]
tap.ok({e.get("user") for e in logins} >= {USERS["imap"], USERS["pop3"]},
       "mailfort_audit recorded the IMAP and POP3 sessions (login events)", logins)

pf.stop()
dc.stop()
tap.done()
