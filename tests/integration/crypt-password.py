#!/usr/bin/env python3
"""mailfort_crypt in password mode against a real Dovecot and PostgreSQL.

The private key is wrapped under the user's password (mailfortctl crypt
init), so reading needs the login password, passed to the mail process as
the userdb field mailfort_crypt_password by the passdb (override_fields, as
examples/dovecot shows: it exists only after a login, never in LMTP).  Covers: delivery needs only the
public key; login with password+TOTP code reads mail (the code is not part
of the wrap); a login whose password does not unwrap the key gets NO, not
plaintext or a crash; an app password with its own wrap (crypt app-wrap)
reads mail; crypt rewrap after a password change; crypt status.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, maildir_files  # noqa: E402


def message(subject, body):
    return ("From: a@example.test\r\nTo: dave@example.test\r\nSubject: %s\r\n\r\n%s\r\n"
            % (subject, body)).encode()


def fetch_body(imap, uid):
    typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
    parts = [p for p in data if isinstance(p, tuple)] if data else []
    return typ, (parts[0][1] if parts else None)


site = Site("crypt_password", extra={"crypt": {"mode": "password"}})
# the plugin connects as a login role that has only group mailfort_crypt
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
DAVE = "dave@example.test"
FRANK = "frank@example.test"
CODE = "123456"

# dave's key is wrapped under "correct horse"; he logs in with password+code
r = site.ctl("crypt", "init", DAVE, "--mode", "password", input="correct horse\n")
tap.ok(r.returncode == 0, "crypt init makes a password-mode key pair", r.stderr)
site.sql("UPDATE mailfort.accounts SET totp_state = 'enrolled', "
         "totp_secret = decode(repeat('00', 40), 'hex') WHERE username = :'u'", {"u": DAVE})
# frank's key is wrapped under another password than the one he logs in with
r = site.ctl("crypt", "init", FRANK, "--mode", "password", input="not his login password\n")
tap.eq(r.returncode, 0, "crypt init for a second account")
st = site.ctl("crypt", "status", DAVE)
tap.ok(st.returncode == 0 and "mode password" in st.stdout, "crypt status shows the key", st.stdout)

# the passdb accepts the whole login string; a PAM stack with pam_mailfort
# would check the code and pass the same string on
dc = Dovecot("cpw", site=site, plugins=["mailfort_crypt"],
             users={DAVE: "correct horse" + CODE, FRANK: "frank-login"},
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w")
dc.own_keys(site)
dc.start()

msg = message("for dave", "password mode body")
tap.eq(dc.lmtp_deliver("a@example.test", [DAVE], msg), {},
       "LMTP delivery in password mode (needs only the public key)")
files = maildir_files(dc.home("dave"))
ok = len(files) == 1
for p in files:
    with open(p, "rb") as f:
        ok = ok and f.read(8) == MAGIC
tap.ok(ok, "stored as ciphertext")

imap = dc.imap_login(DAVE, "correct horse" + CODE)
imap.select("INBOX")
typ, body = fetch_body(imap, 1)
tap.ok(typ == "OK" and body is not None and body.endswith(msg),
       "login with password+TOTP code reads the message", (typ, body))
typ, uid = imap.append("INBOX", None, None, message("appended", "x" * 100000))
typ, body = fetch_body(imap, 2)
tap.ok(body is not None and body.endswith(b"x" * 1000 + b"\r\n"), "APPEND then FETCH in password mode")
imap.logout()

tap.eq(dc.lmtp_deliver("a@example.test", [FRANK], message("for frank", "b")), {},
       "delivery to an account whose key the login cannot unwrap")
imap = dc.imap_login(FRANK, "frank-login")
imap.select("INBOX")
try:
    typ, body = fetch_body(imap, 1)
except Exception as e:  # noqa: BLE001 - a BYE raises
    typ, body = "BYE", str(e)
tap.ok(typ != "OK" and not (isinstance(body, bytes) and b"for frank" in body),
       "a password that does not unwrap the key: no plaintext, an error", (typ, body))
# the imap process hands the error to Dovecot's log process, which writes
# it a moment after the client has its answer
line = dc.wait_log_line(r"does not unwrap with the login password")
tap.ok(line is not None and "frank@example.test" in line,
       "the log says why, naming the account", line)

# app password with its own wrap
r = site.ctl("-q", "apppass", "add", DAVE, "--label", "phone")
app = r.stdout.strip()
tap.ok(r.returncode == 0 and re.match(r"^[a-z0-9]{4}(-[a-z0-9]{4}){4}$", app or ""),
       "apppass add prints an app password", r.stdout + r.stderr)
r = site.ctl("crypt", "app-wrap", DAVE, "phone", input="correct horse\n%s\n" % app)
tap.ok(r.returncode == 0, "crypt app-wrap stores a wrap under the app password", r.stderr)
r = site.ctl("crypt", "app-wrap", DAVE, "phone", input="wrong password\n%s\n" % app)
tap.ok(r.returncode == 1 and "does not unwrap" in r.stderr,
       "app-wrap refuses a wrong account password", r.stderr)
dc.stop()
dc.users[DAVE] = app.upper()  # typed in upper case: the normal form is used
dc.start()
imap = dc.imap_login(DAVE, app.upper())
imap.select("INBOX")
typ, body = fetch_body(imap, 1)
tap.ok(typ == "OK" and body is not None and body.endswith(msg),
       "login with the app password reads the message", (typ, body))
imap.logout()

# password change: rewrap, then the new password reads the old mail
r = site.ctl("crypt", "rewrap", DAVE, input="correct horse\nbattery staple\n")
tap.ok(r.returncode == 0, "crypt rewrap after a password change", r.stderr)
dc.stop()
dc.users[DAVE] = "battery staple" + CODE
dc.start()
imap = dc.imap_login(DAVE, "battery staple" + CODE)
imap.select("INBOX")
typ, body = fetch_body(imap, 1)
tap.ok(typ == "OK" and body is not None and body.endswith(msg),
       "after rewrap the new password reads the old mail", (typ, body))
imap.logout()
r = site.ctl("crypt", "rewrap", DAVE, input="correct horse\nanother\n")
tap.ok(r.returncode == 1, "rewrap with the old password fails", r.stderr)

# lost password: recover from the escrow copy with the offline recovery key
rdir = os.path.join(site.dir, "recovery")
os.makedirs(rdir)
priv_pem = subprocess.run(["openssl", "genpkey", "-algorithm", "X25519"], check=True,
                          capture_output=True).stdout
priv_der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=priv_pem, check=True,
                          capture_output=True).stdout
pub_der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=priv_pem,
                         check=True, capture_output=True).stdout
rkey, rpub = os.path.join(rdir, "recovery.key"), os.path.join(rdir, "recovery.pub")
with open(rkey, "wb") as f:
    f.write(priv_der[-32:])
os.chmod(rkey, 0o600)
with open(rpub, "wb") as f:
    f.write(pub_der[-32:])
os.chmod(rpub, 0o644)
IVAN = "ivan@example.test"
site.set("crypt", "escrow_public_key", rpub)
r = site.ctl("crypt", "init", IVAN, "--mode", "password", input="forgotten one\n")
tap.ok(r.returncode == 0, "crypt init with an escrow key configured", r.stderr)
ivan_msg = message("for ivan", "before the password was lost")
dc.stop()
dc.users[IVAN] = "new start"
dc.start()
tap.eq(dc.lmtp_deliver("a@example.test", [IVAN], ivan_msg), {}, "mail for ivan delivered")
r = site.ctl("crypt", "recover", IVAN, rkey, input="wrong\n")
r2 = site.ctl("crypt", "recover", IVAN, rpub, input="x\n")
tap.ok(r2.returncode == 1, "recover refuses a key file that others can read", r2.stderr)
tap.ok(r.returncode == 0, "crypt recover rewraps from the escrow copy", r.stderr)
r = site.ctl("crypt", "recover", IVAN, rkey, input="new start\n")
tap.ok(r.returncode == 0, "and again, with the password he will use", r.stderr)
imap = dc.imap_login(IVAN, "new start")
imap.select("INBOX")
typ, body = fetch_body(imap, 1)
tap.ok(typ == "OK" and body is not None and body.endswith(ivan_msg),
       "after recovery the new password reads mail stored before", (typ, body))
imap.logout()

log = dc.log_text()
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
for secret in ("correct horse", "battery staple", app):
    tap.ok(secret not in log, "the log does not contain a password")
dc.stop()
tap.done()
