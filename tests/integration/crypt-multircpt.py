#!/usr/bin/env python3
"""mailfort_crypt in password mode: one message for several local recipients.

In an LMTP transaction with several recipients Dovecot saves the message
for the first and copies that saved, encrypted message for the others;
lmtp has no password to decrypt it in password mode, so the plugin copies
from the plaintext it has just saved.  Covers: such a transaction accepts
every recipient, stores only ciphertext, each copy sealed to its own
account's key (each reads it with only his own password); through Postfix
a message for three recipients is delivered to all of them at once, with
Postfix's default recipient limit and with one recipient per transaction.
"""
import os
import random
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402
from cryptlib import MAGIC, maildir_files  # noqa: E402

USERS = ["anna@example.test", "ben@example.test", "cleo@example.test"]


def password(u):
    return "pw of " + u.split("@")[0]


def stored(user):
    out = []
    for p in maildir_files(dc.home(user.split("@")[0])):
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def lmtp_transaction(rcpts, msg):
    """One LMTP transaction; returns {rcpt: code} (LMTP answers DATA per recipient)."""
    out = {}
    with smtplib.LMTP("127.0.0.1", dc.lmtp_port, timeout=60) as lmtp:
        lmtp.ehlo("client.example.test")
        lmtp.mail("sender@example.test")
        ok = []
        for r in rcpts:
            code, _ = lmtp.rcpt(r)
            out[r] = code
            if code == 250:
                ok.append(r)
        if ok and lmtp.docmd("DATA")[0] == 354:
            lmtp.send(msg + b".\r\n")
            for r in ok:
                out[r] = lmtp.getreply()[0]
    return out


def read_inbox(user):
    """Every message in user's INBOX, read over IMAP with the user's password."""
    imap = dc.imap_login(user, password(user))
    imap.select("INBOX", readonly=True)
    typ, data = imap.uid("SEARCH", None, "ALL")
    out = []
    for uid in data[0].split():
        typ, d = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
        parts = [p[1] for p in d if isinstance(p, tuple)]
        out.append(parts[0] if typ == "OK" and parts else None)
    imap.logout()
    return out


site = Site("crypt_multircpt", extra={"crypt": {"mode": "password"}})
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
for u in USERS:
    site.ctl("crypt", "init", u, "--mode", "password", input=password(u) + "\n", check=True)
dc = Dovecot("cmr", site=site, plugins=["mailfort_crypt"], users={u: password(u) for u in USERS},
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w")
dc.own_keys(site)
dc.start()
marker = "MFMULTI%08x" % random.getrandbits(32)

# ---------------------------------------------------------------- one LMTP transaction
msg = ("From: sender@example.test\r\nTo: anna@example.test, ben@example.test, "
       "cleo@example.test\r\nSubject: for three %s\r\nMessage-ID: <%s@example.test>\r\n\r\n"
       "body %s\r\n" % (marker, marker, marker)).encode()
codes = lmtp_transaction(USERS, msg)
tap.eq(codes, {u: 250 for u in USERS}, "three recipients in one transaction: all accepted")
blobs = [b for u in USERS for b in stored(u)]
tap.ok(all(b.startswith(MAGIC) and marker.encode() not in b for b in blobs),
       "whatever was stored is ciphertext", len(blobs))
deferred = [u for u, c in codes.items() if c != 250]
tap.diag("deferred: %s" % (", ".join(deferred) or "none"))
for u in deferred:  # what the sender does later: retry them
    tap.eq(lmtp_transaction([u], msg), {u: 250}, "retry for %s alone is accepted" % u)
for u in USERS:
    got = read_inbox(u)
    tap.ok(len(got) == 1 and got[0] is not None and got[0].endswith(msg),
           "%s reads the message, byte-identical" % u, [None if g is None else len(g) for g in got])

# ---------------------------------------------------------------- through Postfix
pf = Postfix("cmr", dovecot=dc).start()
msg2 = msg.replace(b"for three", b"via postfix")
with pf.smtp() as s:
    refused = s.sendmail("sender@example.test", USERS, msg2)
tap.eq(refused, {}, "Postfix accepts a message for three local recipients")
n = pf.wait_delivered(3, timeout=60)
tap.eq(n, 3, "all three are delivered at once (one LMTP transaction)")
tap.eq(len(re.findall(r"status=deferred", pf.maillog_text())), 0, "none deferred")
for u in USERS:
    got = read_inbox(u)
    tap.ok(len(got) == 2 and got[1] is not None
           and ("Subject: via postfix %s\r\n" % marker).encode() in got[1]
           and got[1].endswith(("\r\n\r\nbody %s\r\n" % marker).encode()),
           "%s reads the message delivered by Postfix" % u,
           [None if g is None else len(g) for g in got])
tap.ok(all(b.startswith(MAGIC) and marker.encode() not in b for u in USERS for b in stored(u)),
       "every stored copy is ciphertext")
pf.stop()

log = dc.log_text()
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
time.sleep(0.1)
dc.stop()
tap.done()
