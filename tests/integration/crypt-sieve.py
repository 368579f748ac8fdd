#!/usr/bin/env python3
"""mailfort_crypt with Sieve (Pigeonhole) in LMTP and dovecot-lda, against a real Dovecot.

A user's Sieve script files incoming mail into folders.  Covers: fileinto
an existing folder and fileinto :create a new (nested) one store
ciphertext there, which IMAP FETCHes byte-identical; fileinto plus keep
stores two encrypted copies; a failing fileinto falls back to an
encrypted implicit keep; a large message (several chunks, spooled to
mail_temp_dir); fileinto through dovecot-lda; one LMTP transaction for
two recipients, where Dovecot copies the first recipient's saved
(encrypted) mail for the second, is readable by the second with his own
key; the compiled script (.svbin) and every other file under the homes and
the temp dir hold no marker; password mode: fileinto needs only the
public key.
"""
import os
import random
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, all_ciphertext, maildir_files, scan_for, walk  # noqa: E402


SCRIPT = r"""require ["fileinto", "mailbox"];
if header :is "X-Route" "reports" {
  fileinto "Reports";
  stop;
}
if header :is "X-Route" "new" {
  fileinto :create "Projects.Sieve";
  stop;
}
if header :is "X-Route" "both" {
  fileinto "Reports";
  keep;
  stop;
}
if header :is "X-Route" "missing" {
  fileinto "Nowhere";
  stop;
}
"""


def message(subject, body, route, to="alice@example.test"):
    return ("From: Sender <sender@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%08x@example.test>\r\nX-Route: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (to, subject, random.getrandbits(32), route)).encode() + body


def text_body(size, seed, marker):
    rnd = random.Random(seed)
    out = bytearray(("first line %s\r\n" % marker).encode())
    while len(out) < size:
        out += "".join(rnd.choice("abcdefghij klmnop") for _ in range(70)).encode() + b"\r\n"
    return bytes(out)


def fetch_all(imap, box):
    """{uid: BODY[]} of every message in box."""
    typ, _ = imap.select(box, readonly=True)
    if typ != "OK":
        return None
    typ, data = imap.uid("SEARCH", None, "ALL")
    out = {}
    for uid in data[0].split():
        typ, d = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
        parts = [p for p in d if isinstance(p, tuple)]
        out[int(uid)] = parts[0][1] if typ == "OK" and parts else None
    return out


def install_script(dc, user):
    """~/sieve/mailfort.sieve, active through ~/.dovecot.sieve (as ManageSieve does)."""
    home = dc.home(user)
    sdir = os.path.join(home, "sieve")
    os.makedirs(sdir, exist_ok=True)
    path = os.path.join(sdir, "mailfort.sieve")
    with open(path, "w") as f:
        f.write(SCRIPT)
    link = os.path.join(home, ".dovecot.sieve")
    if not os.path.lexists(link):
        os.symlink("sieve/mailfort.sieve", link)
    for p in (home, sdir, path):
        os.chown(p, dc.uid, dc.gid)
    os.lchown(link, dc.uid, dc.gid)
    return sdir


def lmtp_code(dc, rcpts, msg):
    """Deliver in one transaction; returns {rcpt: (code, text)} for every
    recipient not accepted ({} when all were).  LMTP answers DATA once per
    recipient, which smtplib's sendmail does not read."""
    refused = {}
    with smtplib.LMTP("127.0.0.1", dc.lmtp_port, timeout=60) as lmtp:
        lmtp.ehlo("client.example.test")
        lmtp.mail("sender@example.test")
        accepted = []
        for r in rcpts:
            code, text = lmtp.rcpt(r)
            if code == 250:
                accepted.append(r)
            else:
                refused[r] = (code, text)
        if accepted:
            code, text = lmtp.docmd("DATA")
            if code != 354:
                return dict(refused, DATA=(code, text))
            data = re.sub(rb"(?m)^\.", b"..", msg)
            lmtp.send(data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            for r in accepted:
                code, text = lmtp.getreply()
                if code != 250:
                    refused[r] = (code, text)
    return refused


site = Site("crypt_sieve")
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
ALICE, BOB, DAVE = "alice@example.test", "bob@example.test", "dave@example.test"
dc = Dovecot("csv", site=site, plugins=["mailfort_crypt"], lmtp_plugins=["sieve"],
             users={ALICE: "pw-alice", BOB: "pw-bob", DAVE: "correct horse"},
             plugin_settings={"sieve": "file:~/sieve;active=~/.dovecot.sieve"},
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w",
             extra="mail_temp_dir = %s\nprotocol lda {\n  mail_plugins = $mail_plugins sieve\n}\n")
tmpdir = os.path.join(dc.dir, "tmp")
os.makedirs(tmpdir)
os.chown(tmpdir, dc.uid, dc.gid)
dc.extra = dc.extra % tmpdir
dc.own_keys(site)
sieve_dir = install_script(dc, "alice")
dc.start()

marker = "MFSIEVE%08x" % random.getrandbits(32)
imap = dc.imap_login(ALICE, "pw-alice")
tap.eq(imap.create("Reports")[0], "OK", "alice has a folder Reports")
imap.logout()

# ---------------------------------------------------------------- fileinto an existing folder
m_reports = message("quarterly %s" % marker, text_body(3000, 1, marker), "reports")
tap.eq(lmtp_code(dc, [ALICE], m_reports), {}, "LMTP delivery with a fileinto script is accepted")
home = dc.home("alice")
tap.eq(len(maildir_files(home, "Reports")), 1, "sieve filed the message into Reports")
tap.eq(maildir_files(home), [], "and not into INBOX")
tap.ok(all_ciphertext(maildir_files(home, "Reports")), "the file in Reports is mailfort ciphertext")
svbins = [p for p in walk(home) if p.endswith(".svbin")]
tap.eq(len(svbins), 1, "the script was compiled (%s)" % ", ".join(os.path.basename(p) for p in svbins))

# ---------------------------------------------------------------- fileinto :create
m_new = message("project %s" % marker, text_body(500, 2, marker), "new")
tap.eq(lmtp_code(dc, [ALICE], m_new), {}, "delivery with fileinto :create")
tap.ok(all_ciphertext(maildir_files(home, "Projects.Sieve")),
       "the new folder Projects.Sieve holds ciphertext")

# ---------------------------------------------------------------- fileinto + keep, big message
big = message("big both %s" % marker, text_body(300000, 3, marker), "both")
tap.eq(lmtp_code(dc, [ALICE], big), {}, "delivery of 300 KB with fileinto and keep")
tap.eq(len(maildir_files(home, "Reports")), 2, "one copy more in Reports")
tap.eq(len(maildir_files(home)), 1, "and one in INBOX (keep)")
tap.ok(all_ciphertext(maildir_files(home) + maildir_files(home, "Reports")),
       "both copies are ciphertext")

# ---------------------------------------------------------------- a failing script
# fileinto a folder that does not exist (no :create): the script fails and
# Sieve's implicit keep stores the message in INBOX; the user's Sieve log
# (~/.dovecot.sieve.log) says so, in the clear, but without the marker
m_missing = message("lost folder %s" % marker, text_body(1500, 6, marker), "missing")
tap.eq(lmtp_code(dc, [ALICE], m_missing), {}, "delivery with a failing fileinto is accepted")
tap.eq(len(maildir_files(home)), 2, "implicit keep stored it in INBOX")
tap.ok(all_ciphertext(maildir_files(home)), "as ciphertext")
slog = os.path.join(home, ".dovecot.sieve.log")
tap.ok(os.path.exists(slog) and b"Nowhere" in open(slog, "rb").read(),
       "the user's Sieve log names the failed fileinto")

# ---------------------------------------------------------------- read back
imap = dc.imap_login(ALICE, "pw-alice")
want = {"Reports": [m_reports, big], "Projects.Sieve": [m_new], "INBOX": [big, m_missing]}
for box, msgs in want.items():
    got = fetch_all(imap, box)
    bodies = list((got or {}).values())
    ok = len(bodies) == len(msgs) and all(
        b is not None and b.startswith(b"Return-Path:") and b.endswith(m)
        for b, m in zip(bodies, msgs))
    tap.ok(ok, "%s: FETCH BODY[] is byte-identical to what was delivered (after the "
           "trace headers)" % box, [None if b is None else len(b) for b in bodies])
imap.select("Reports", readonly=True)
typ, data = imap.uid("SEARCH", None, "BODY", marker)
tap.eq(len(data[0].split()), 2, "SEARCH BODY finds the marker in both filed messages")
typ, data = imap.uid("FETCH", "2", "(BODY.PEEK[]<70000.50>)")
parts = [p[1] for p in data if isinstance(p, tuple)]
full = fetch_all(imap, "Reports").get(2) or b""
tap.ok(parts and len(full) > 70050 and parts[0] == full[70000:70050],
       "partial FETCH inside the second chunk of the filed copy")
imap.logout()

# ---------------------------------------------------------------- dovecot-lda
# delivery by Postfix's pipe(8) to dovecot-lda runs the same Sieve script
m_lda = message("via lda %s" % marker, text_body(5000, 7, marker), "reports")
r = subprocess.run(["/usr/lib/dovecot/dovecot-lda", "-c", dc.conf, "-d", ALICE,
                    "-f", "sender@example.test"], input=m_lda, capture_output=True, timeout=60)
tap.ok(r.returncode == 0, "dovecot-lda delivery with the fileinto script", r.stderr)
tap.eq(len(maildir_files(home, "Reports")), 3, "sieve in dovecot-lda filed it into Reports")
tap.ok(all_ciphertext(maildir_files(home, "Reports")), "as ciphertext")
imap = dc.imap_login(ALICE, "pw-alice")
got = fetch_all(imap, "Reports") or {}
tap.ok(got and list(got.values())[-1] is not None and list(got.values())[-1].endswith(m_lda),
       "the message delivered by dovecot-lda FETCHes byte-identical")
imap.logout()

# ---------------------------------------------------------------- two recipients, one transaction
# Dovecot saves for alice first (sieve: Reports), then copies alice's saved
# mail for bob: the plugin must re-encrypt it to bob's key.
m_two = message("for two %s" % marker, text_body(90000, 4, marker), "reports",
                to="alice@example.test, bob@example.test")
tap.eq(lmtp_code(dc, [ALICE, BOB], m_two), {}, "one LMTP transaction for alice and bob")
tap.eq(len(maildir_files(home, "Reports")), 4, "alice's copy was filed into Reports")
tap.ok(all_ciphertext(maildir_files(dc.home("bob"))), "bob's copy in his INBOX is ciphertext")
imap = dc.imap_login(BOB, "pw-bob")
got = fetch_all(imap, "INBOX")
b = list((got or {}).values())
tap.ok(len(b) == 1 and b[0] is not None and b[0].endswith(m_two),
       "bob reads his copy with his own key, byte-identical", [None if x is None else len(x) for x in b])
imap.logout()
tap.ok(site.scalar("SELECT count(DISTINCT k.public_key) FROM mailfort.mail_keys k "
                   "JOIN mailfort.accounts a ON a.id = k.account_id "
                   "WHERE a.username IN ('alice@example.test', 'bob@example.test')") == "2",
       "alice and bob have different keys (so bob's read proves a re-encryption)")

# ---------------------------------------------------------------- no plaintext anywhere
paths = walk(dc.home("alice")) + walk(dc.home("bob")) + walk(tmpdir)
tap.diag("scanned %d files" % len(paths))
tap.eq(scan_for(paths, marker.encode()), [],
       "no file under the homes (messages, indexes, sieve storage) or the temp dir holds the marker")
tap.eq(scan_for(svbins, b"X-Route"), svbins, "(the scan reads the .svbin: it holds the script's strings)")

# ---------------------------------------------------------------- password mode
site.set("crypt", "mode", "password")
r = site.ctl("crypt", "init", DAVE, "--mode", "password", input="correct horse\n")
tap.eq(r.returncode, 0, "a password-mode key for dave")
install_script(dc, "dave")
imap = dc.imap_login(DAVE, "correct horse")
tap.eq(imap.create("Reports")[0], "OK", "dave has a folder Reports")
imap.logout()
m_dave = message("for dave %s" % marker, text_body(2000, 5, marker), "both",
                 to="dave@example.test")
code = lmtp_code(dc, [DAVE], m_dave)
tap.eq(code, {}, "password mode: sieve fileinto and keep need only the public key")
dhome = dc.home("dave")
tap.ok(all_ciphertext(maildir_files(dhome, "Reports")) and all_ciphertext(maildir_files(dhome)),
       "dave's two copies (Reports, INBOX) are ciphertext")
imap = dc.imap_login(DAVE, "correct horse")
for box in ("Reports", "INBOX"):
    b = list((fetch_all(imap, box) or {}).values())
    tap.ok(len(b) == 1 and b[0] is not None and b[0].endswith(m_dave),
           "dave logs in with his password and reads the copy in %s" % box)
imap.logout()
tap.eq(scan_for(walk(dhome), marker.encode()), [], "nothing under dave's home holds the marker")

log = dc.log_text()
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
# After each save Dovecot's delivery code reads Message-ID, Subject and
# From back from the saved mail for its log line; the plugin answers that
# from the plaintext it just saved, so lmtp in password mode (no login
# password) has nothing to fail on.
errs = [ln for ln in log.splitlines() if re.search(r"\b(Error|Warning):", ln)]
tap.eq(errs, [], "no error or warning in the Dovecot log")
tap.ok(re.search(r"lmtp\(dave@example\.test\).*msgid=<", log) is not None,
       "the delivery log line of a password-mode account names the Message-ID")
dc.stop()
tap.done()
