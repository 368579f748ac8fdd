"""The whole mailfort stack on loopback, and the story scripts/demo tells.

Stack(root) starts, in a scratch directory and on free ports: PostgreSQL
(when the environment does not already name one), the schema and keys,
mailfort-auditd, mailfort-milter (trained on a small generated corpus),
Dovecot (imap, pop3, lmtp; mailfort_crypt and mailfort_audit; passdb pam
through pam_mailfort) and Postfix (the milter on port 25 traffic, SMTP
submission authenticated through Dovecot), all with TLS as the examples ship
it, under a throwaway CA made in the scratch directory (stack.ca), and every
database connection through a PgBouncer run from examples/pgbouncer.  Two officials, alice and bob,
get passwords and an enrolled authenticator.

Story(stack, say) walks through what an institution cares about and returns
the facts it saw, so scripts/demo can print them and
tests/integration/e2e-story.py can assert them.  Nothing outside the
scratch directory is changed except Postfix's alternate_config_directories
(restored on stop).
"""

import email
import email.policy
import imaplib
import os
import random
import smtplib
import subprocess
import time
from email.message import EmailMessage

import mailfort
from mailfort import Site, procs, run
from stack import Dovecot, Postfix, mail_user
from mfpam import PamSetup, totp_code, wait_fresh_step
from milterlib import Milter, train_corpus
from auditlib import Auditd
from tlslib import TestCA
from bouncer import Bouncer

DOMAIN = "example.test"
USERS = {"alice": "Correct-Horse-7", "bob": "Battery-Staple-9"}


def pdf_bytes(size=40 * 1024):
    """A small, well-formed-looking PDF (the milter looks at magic bytes)."""
    rnd = random.Random(42)
    body = bytes(rnd.getrandbits(8) for _ in range(size))
    return (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
            b"stream\n" + body + b"\nendstream\n%%EOF\n")


class Stack:
    def __init__(self, name="demo", say=print):
        self.say = say
        self.name = name
        self.site = Site(name, extra={
            "spool": {"node": "node1"},
            "pam": {"max_failures": 10},
            "crypt": {"mode": "server"},
            "auditd": {"failed_logins": 5, "failed_logins_window": "10m"},
            "milter": {"max_attachment_size": "1M", "reject_threshold": "9.0",
                       "hold_threshold": "7.0", "spam_threshold": "5.0",
                       "min_training": 10, "model_refresh": "5s"},
        })
        self.auditd = None
        self.milter = None
        self.dovecot = None
        self.postfix = None
        self.ca = None
        self.secrets = {}

    # ------------------------------------------------------------ start
    def start(self):
        site = self.site
        uid, gid = mail_user()
        # The mail processes (crypt plugin) read master.key as the mail user;
        # the directory stays root's, searchable (as examples/mailfort.conf
        # [keys] says, and "mailfortctl check" wants).
        os.chmod(site.keys, 0o711)
        os.chown(os.path.join(site.keys, "master.key"), uid, gid)

        self.say("Making a throwaway certificate authority and a server certificate (openssl)")
        self.ca = TestCA(os.path.join(site.dir, "ca"))

        self.say("Starting PgBouncer (examples/pgbouncer): logins reuse warm database "
                 "connections")
        # Every part of this stack connects as the postgres role whatever
        # its system user, so the shipped peer check gives way to trust here.
        self.bouncer = Bouncer(site, os.path.join(site.dir, "pgbouncer"), allow_trust=True).start()
        site.set("database", "conninfo", self.bouncer.conninfo(user=site.pg.user))
        site.set("crypt", "conninfo", self.bouncer.conninfo("mailfort_crypt", user=site.pg.user))

        self.say("Training the spam filter on a small generated corpus")
        spam_dir, ham_mbox = train_corpus(os.path.join(site.dir, "corpus"), n=60)
        site.ctl("spam", "train", "--spam", spam_dir, "--ham", ham_mbox, check=True)

        # Both constructors add their settings to the configuration: make
        # them before either daemon starts reading it.
        self.auditd = Auditd(site)
        self.milter = Milter(site)
        self.say("mailfort-spoold is receiving events on %s (the only writer of the spool)"
                 % site.socket)
        self.say("Starting mailfort-auditd (spool -> PostgreSQL, hash chain, alerts)")
        self.auditd.start()
        self.say("Starting mailfort-milter")
        self.milter.start()

        self.say("PAM stack for Dovecot: app password, or password + 6-digit code")
        self.pam = PamSetup(site, passwords=USERS)
        for service in ("imap", "pop3", "smtp"):
            self.pam.mail_stack(service)

        self.say("Starting Dovecot with mailfort_crypt and mailfort_audit, passdb pam, TLS required")
        self.dovecot = Dovecot(
            self.name, site=site,
            plugins=["notify", "mailfort_audit", "mailfort_crypt"],
            imap_plugins=["imap_mailfort_audit"],
            pam_service="%s", pam_dir=self.pam.services,
            extra="imap_id_retain = yes\nauth_failure_delay = 0\n"
                  "auth_username_format = %n\n",
            userdb_extra="mailfort_audit_client_id=%{client_id}", tls=self.ca)
        self.dovecot.start()

        self.say("Starting Postfix: port 25 through the milter (STARTTLS offered), "
                 "submission with SASL (TLS required)")
        self.postfix = Postfix(self.name, dovecot=self.dovecot,
                               milter="inet:127.0.0.1:%d" % self.milter.port, tls=self.ca)
        self.postfix.start()

        for user in USERS:
            self.secrets[user] = self.pam.enroll(user)
        return self

    def code(self, user, fresh=False):
        if fresh:
            wait_fresh_step()
        return totp_code(self.secrets[user])

    def stop(self):
        procs.stop_all()


class Story:
    """Each step returns a dict of what happened."""

    def __init__(self, stack, say=print):
        self.s = stack
        self.say = say
        self.marker = "Budget-2027-%06d" % random.randrange(10 ** 6)

    def report_message(self):
        msg = EmailMessage()
        msg["From"] = "alice@%s" % DOMAIN
        msg["To"] = "bob@%s" % DOMAIN
        msg["Subject"] = "Quarterly report %s" % self.marker
        msg["Date"] = email.utils.formatdate(localtime=False)
        msg["Message-ID"] = email.utils.make_msgid(domain=DOMAIN)
        msg.set_content("Dear Bob,\n\nattached is the quarterly report (%s).\n\nAlice\n"
                        % self.marker)
        msg.add_attachment(pdf_bytes(), maintype="application", subtype="pdf",
                           filename="report-q3.pdf")
        return msg

    def send_report(self):
        """1. alice -> bob through authenticated submission (password + code)."""
        s = self.s
        msg = self.report_message()
        self.sent = msg.as_bytes(policy=email.policy.SMTP)
        self.message_id = msg["Message-ID"]
        bad = {}
        smtp = s.postfix.smtp(submission=True)
        try:
            smtp.login("alice", USERS["alice"])
            bad["password only"] = "accepted"
        except smtplib.SMTPAuthenticationError as e:
            bad["password only"] = "refused (%d)" % e.smtp_code
        finally:
            smtp.close()
        code = s.code("alice", fresh=True)
        smtp = s.postfix.smtp(submission=True)
        smtp.login("alice", USERS["alice"] + code)
        refused = smtp.sendmail("alice@%s" % DOMAIN, ["bob@%s" % DOMAIN], self.sent)
        smtp.quit()
        delivered = s.postfix.wait_delivered(1, 60)
        return {"password_only": bad["password only"], "refused": refused,
                "delivered": delivered >= 1, "message_id": self.message_id}

    def outside_mail(self):
        """2. spam and an oversized attachment arrive from outside on port 25,
        the first over STARTTLS, the second in plain (the verdicts say which)."""
        s = self.s
        rnd = random.Random(3)
        from milterlib import spam_message
        spam = spam_message(999, rnd).replace("victim@", "bob@").encode()
        out = {}
        smtp = s.postfix.smtp(starttls=True)
        try:
            smtp.sendmail("promo@deals.example", ["bob@%s" % DOMAIN], spam)
            out["spam"] = (250, "accepted")
        except smtplib.SMTPDataError as e:
            out["spam"] = (e.smtp_code, e.smtp_error.decode(errors="replace"))
        except smtplib.SMTPRecipientsRefused as e:
            out["spam"] = list(e.recipients.values())[0]
        finally:
            smtp.close()
        big = EmailMessage()
        big["From"] = "partner@other.example"
        big["To"] = "bob@%s" % DOMAIN
        big["Subject"] = "Scans"
        big["Date"] = email.utils.formatdate()
        big["Message-ID"] = email.utils.make_msgid(domain="other.example")
        big.set_content("The scans you asked for.\n")
        big.add_attachment(os.urandom(3 * 1024 * 1024), maintype="application",
                           subtype="octet-stream", filename="scans.tar")
        smtp = s.postfix.smtp()
        try:
            smtp.sendmail("partner@other.example", ["bob@%s" % DOMAIN], big.as_bytes())
            out["oversized"] = (250, "accepted")
        except smtplib.SMTPDataError as e:
            out["oversized"] = (e.smtp_code, e.smtp_error.decode(errors="replace"))
        finally:
            smtp.close()
        out["held"] = [q for q in s.postfix.queue_ids() if q[0] == "hold"]
        return out

    def read_report(self):
        """3. bob reads the report over IMAP with password + code; a wrong code fails."""
        s = self.s
        out = {}
        m = s.dovecot.imap()
        try:
            m.login("bob", USERS["bob"] + "000000")
            out["wrong_code"] = "accepted"
        except imaplib.IMAP4.error as e:
            out["wrong_code"] = "refused: %s" % e
        code = s.code("bob", fresh=True)
        m = s.dovecot.imap()
        m._simple_command("ID", '("name" "Thunderbird" "version" "128.4")')
        m.login("bob", USERS["bob"] + code)
        m.select("INBOX")
        typ, data = m.search(None, "HEADER", "Message-ID", self.message_id)
        uids = data[0].split()
        out["found"] = len(uids)
        body = b""
        if uids:
            typ, data = m.fetch(uids[-1], "(BODY[])")
            body = data[0][1]
        m.logout()
        out["received"] = body
        out["code"] = code
        # The same code again is a replay.
        m = s.dovecot.imap()
        try:
            m.login("bob", USERS["bob"] + code)
            out["replay"] = "accepted"
            m.logout()
        except imaplib.IMAP4.error as e:
            out["replay"] = "refused: %s" % e
        return out

    def on_disk(self):
        """4. the stored file is ciphertext; no file under the home holds the marker."""
        s = self.s
        files = s.dovecot.mail_files("bob")
        msgs = [f for f in files if "/cur/" in f or "/new/" in f]
        stored = b""
        for f in msgs:
            with open(f, "rb") as fh:
                data = fh.read()
            if len(data) > len(stored):
                stored = data
        leaks = []
        for f in files:
            try:
                with open(f, "rb") as fh:
                    if self.marker.encode() in fh.read():
                        leaks.append(f)
            except OSError:
                pass
        return {"stored": stored, "files": len(files), "leaks": leaks}

    def audit_trail(self):
        """5. logins, the read, verdicts, an alert from failed logins, verify OK."""
        s = self.s
        for _ in range(6):
            m = s.dovecot.imap()
            try:
                m.login("bob", USERS["bob"] + "123456")
            except imaplib.IMAP4.error:
                pass
            m.shutdown()
        time.sleep(1.5)
        site = s.site
        deadline = time.time() + 30
        alerts = []
        while time.time() < deadline:
            alerts = site.sql("SELECT rule, username FROM audit.alerts ORDER BY 1")
            if any("failed" in a[0] for a in alerts):
                break
            time.sleep(0.5)
        out = {
            "auth": site.sql("SELECT to_char(event_time, 'HH24:MI:SS'), username, service, "
                             "result, reason FROM audit.auth_events "
                             "WHERE mode IS DISTINCT FROM 'authsucc' ORDER BY event_time, seq"),
            "logins": site.sql("SELECT username, service, ip, client, tls FROM audit.logins "
                               "WHERE type = 'login' ORDER BY event_time"),
            "reads": site.sql("SELECT username, mailbox, message_id FROM audit.message_access "
                              "WHERE action = 'read' ORDER BY event_time"),
            "verdicts": site.sql("SELECT action, score, sender, tls FROM audit.mail_verdicts "
                                 "ORDER BY verdict_time"),
            "alerts": alerts,
        }
        r = site.ctl("audit", "verify")
        out["verify"] = (r.returncode, (r.stdout + r.stderr).strip())
        return out
