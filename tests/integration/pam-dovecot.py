#!/usr/bin/env python3
"""End to end: a real Dovecot authenticating through PAM (pam_wrapper) with
pam_mailfort, and a real IMAP client (imaplib).

Dovecot's passdb pam answers every prompt with the client's password, so the
user types password followed by the code; an app password works alone; a
wrong code is refused; an app password works only for its protocols (IMAP,
POP3); SMTP AUTH through Postfix submission and Dovecot SASL works with
password+code and with an smtp app password; the auth events name the
protocol and the client's address.  The PAM service is the protocol (passdb args = %s), as in
examples/dovecot/conf.d/01-mailfort-auth.conf.
"""

import imaplib
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup, totp_code, wait_fresh_step  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402

PASSWORD = "Winter 2026?"

# every login here comes from 127.0.0.1 and several are refused on purpose:
# the address's waits (pam-throttle.py) are kept out of the way
site = Site("pam-dovecot", extra={"pam": {"throttle_after": 100}})
pam = PamSetup(site, passwords={"anna": PASSWORD})
pam.mail_stack("imap")
pam.mail_stack("pop3")
pam.mail_stack("smtp")
secret = pam.enroll("anna")
r = site.ctl("apppass", "add", "anna", "--label", "Outlook", "--protocols", "imap")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
apppass = m.group(1) if m else ""
tap.ok(apppass != "", "app password issued", r.stdout + r.stderr)

dc = Dovecot("pam", site=site, pam_service="%s", pam_dir=pam.services,
             extra="auth_failure_delay = 0\n")
dc.start()


def login(user, password):
    m = dc.imap()
    try:
        typ, _ = m.login(user, password)
        ok = typ == "OK"
        if ok:
            typ, data = m.select("INBOX")
            ok = typ == "OK"
        m.logout()
        return ok, ""
    except imaplib.IMAP4.error as e:
        try:
            m.shutdown()
        except OSError:
            pass
        return False, str(e)


wait_fresh_step(margin=8)
code = totp_code(secret)
n0 = len(pam.events())
ok, why = login("anna", PASSWORD + code)
tap.ok(ok, "IMAP login with password+code, INBOX selected", why + dc.log_text()[-2000:])
evs = pam.events()[n0:]
tap.ok(len(evs) == 1 and evs[0].get("result") == "ok" and evs[0].get("protocol") == "imap"
       and evs[0].get("ip") == "127.0.0.1", "one ok event naming imap and the client address",
       evs)

ok, why = login("anna", PASSWORD + code)
tap.ok(not ok and "AUTHENTICATIONFAILED" in why.upper(), "the same code again is refused", why)
tap.eq(pam.events()[-1].get("reason"), "replay", "as a replay")

wrong = "%06d" % ((int(code) + 7) % 1000000)
ok, why = login("anna", PASSWORD + wrong)
tap.ok(not ok, "a wrong code is refused", why)
tap.eq(pam.events()[-1].get("reason"), "bad_code", "as bad_code")

ok, why = login("anna", "not the password" + totp_code(secret, time.time() + 30))
tap.ok(not ok, "a valid next-step code with a wrong password is refused", why)
tap.eq([(e.get("mode"), e.get("reason")) for e in pam.events()[-2:]],
       [("auth", "ok"), ("authfail", "bad_password")], "the password module's refusal is counted")

ok, why = login("anna", apppass)
tap.ok(ok, "IMAP login with an app password", why)
tap.eq(pam.events()[-1].get("reason"), "apppass", "recorded as an app password login")

def pop3_login(user, password):
    return dc.pop3_login(user, password)


ok, why = pop3_login("anna", apppass)
tap.ok(not ok, "the imap-only app password is refused over POP3", why)
tap.eq(pam.events()[-1].get("reason"), "apppass_protocol", "as apppass_protocol (service pop3)")
r = site.ctl("apppass", "add", "anna", "--label", "Phone", "--protocols", "pop3")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
ok, why = pop3_login("anna", m.group(1) if m else "")
tap.ok(ok, "a pop3 app password works over POP3", why)

site.ctl("apppass", "revoke", "anna", "Outlook", check=True)
ok, why = login("anna", apppass)
tap.ok(not ok, "a revoked app password is refused by Dovecot", why)

ok, why = login("anna", PASSWORD)
tap.ok(not ok, "the password alone is refused", why)

# SMTP AUTH: Postfix submission asks Dovecot (SASL), which asks PAM service "smtp"
pf = Postfix("pam", dovecot=dc).start()


def smtp_login(user, password):
    try:
        with pf.smtp(submission=True) as s:
            s.login(user, password)
        return True, ""
    except smtplib.SMTPException as e:
        return False, str(e)


pam.reset_step("anna")
wait_fresh_step()
ok, why = smtp_login("anna", PASSWORD + totp_code(secret))
tap.ok(ok, "SMTP AUTH through Postfix and Dovecot SASL with password+code", why)
tap.eq(pam.events()[-1].get("protocol"), "smtp", "recorded with protocol smtp")
ok, why = smtp_login("anna", PASSWORD + "000000" if totp_code(secret) != "000000" else "111111")
tap.ok(not ok and "535" in why, "SMTP AUTH with a wrong code is refused (535)", why)
r = site.ctl("apppass", "add", "anna", "--label", "Scanner", "--protocols", "smtp")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
ok, why = smtp_login("anna", m.group(1) if m else "")
tap.ok(ok, "SMTP AUTH with an smtp app password", why)
pf.stop()

dc.stop()
tap.done()
