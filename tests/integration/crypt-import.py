#!/usr/bin/env python3
"""mailfort_crypt with doveadm import, save and fetch, against a real Dovecot.

Covers: doveadm import from a plaintext Maildir (INBOX and a subfolder,
flags kept) stores every message encrypted and IMAP FETCHes it
byte-identical; importing an encrypted backup of the same account's
Maildir decrypts and re-encrypts it; doveadm save into a folder; doveadm
fetch decrypts in server mode; no file under the mail home holds the
marker; in password mode, import and save need only the public key, and
doveadm fetch (no password there) fails cleanly without plaintext.
"""
import os
import random
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, all_ciphertext, maildir_files, scan_for, walk  # noqa: E402


def message(subject, body):
    return ("From: Archive <archive@example.test>\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: <%08x@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (subject, random.getrandbits(32))).encode() + body


def text_body(size, seed, marker):
    rnd = random.Random(seed)
    out = bytearray(("about %s\r\n" % marker).encode())
    while len(out) < size:
        out += "".join(rnd.choice("abcdefghij klmnop") for _ in range(70)).encode() + b"\r\n"
    return bytes(out)


def chown_tree(d, uid, gid):
    os.chown(d, uid, gid)
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)


def plain_maildir(root, folders, uid, gid):
    """A Maildir written by hand (no Dovecot): {folder: [(msg, flags)]}, "" is INBOX."""
    shutil.rmtree(root, ignore_errors=True)
    for folder, msgs in folders.items():
        base = os.path.join(root, ("." + folder) if folder else "")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        for i, (msg, flags) in enumerate(msgs):
            name = "%d.M%dP%d.oldhost,S=%d:2,%s" % (1700000000 + i, i, os.getpid(), len(msg), flags)
            with open(os.path.join(base, "cur", name), "wb") as f:
                f.write(msg)
    chown_tree(root, uid, gid)


def imap_box(imap, box):
    """[(flags, BODY[])] of every message in box, in UID order."""
    typ, _ = imap.select(box, readonly=True)
    if typ != "OK":
        return None
    typ, data = imap.uid("SEARCH", None, "ALL")
    out = []
    for uid in data[0].split():
        typ, d = imap.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
        parts = [p for p in d if isinstance(p, tuple)]
        if typ != "OK" or not parts:
            out.append((None, None))
            continue
        m = re.search(rb"FLAGS \(([^)]*)\)", parts[0][0])
        flags = sorted((m.group(1) if m else b"").decode().split())
        out.append(([f for f in flags if f != "\\Recent"], parts[0][1]))
    return out


site = Site("crypt_import")
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
ALICE, DAVE = "alice@example.test", "dave@example.test"
dc = Dovecot("cim", site=site, plugins=["mailfort_crypt"],
             users={ALICE: "pw-alice", DAVE: "correct horse"},
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w")
dc.own_keys(site)
dc.start()
marker = "MFIMPORT%08x" % random.getrandbits(32)
home = dc.home("alice")

# ---------------------------------------------------------------- import from a plaintext Maildir
src = os.path.join(dc.dir, "src-plain")
inbox_msgs = [(message("old %d %s" % (i, marker), text_body(size, i, marker)), flags)
              for i, (size, flags) in enumerate([(500, "S"), (70000, "FS"), (200000, "")])]
archive_msgs = [(message("archived %s" % marker, text_body(3000, 9, marker)), "RS")]
plain_maildir(src, {"": inbox_msgs, "Archive": archive_msgs}, dc.uid, dc.gid)
r = dc.doveadm("import", "-u", ALICE, "-s", "maildir:%s" % src, "", "ALL")
tap.ok(r.returncode == 0, "doveadm import from a plaintext Maildir", r.stderr)
tap.eq(len(maildir_files(home)), 3, "three messages imported into INBOX")
tap.eq(len(maildir_files(home, "Archive")), 1, "one into Archive")
tap.ok(all_ciphertext(maildir_files(home) +
                      maildir_files(home, "Archive")),
       "every imported message is stored as ciphertext")
imap = dc.imap_login(ALICE, "pw-alice")
flagmap = {"S": "\\Seen", "F": "\\Flagged", "R": "\\Answered"}
for box, msgs in (("INBOX", inbox_msgs), ("Archive", archive_msgs)):
    got = imap_box(imap, box) or []
    want = [(sorted(flagmap[c] for c in fl), m) for m, fl in msgs]
    tap.ok(got == want, "%s: FETCH returns the imported messages byte-identical, flags kept" % box,
           "got %r\nwant %r" % ([(f, None if b is None else len(b)) for f, b in got],
                                [(f, len(b)) for f, b in want]))
imap.select("INBOX")
typ, data = imap.uid("SEARCH", None, "BODY", marker)
tap.eq(len(data[0].split()), 3, "SEARCH BODY finds the marker in the imported messages")
imap.logout()

# ---------------------------------------------------------------- restore an encrypted backup
backup = os.path.join(dc.dir, "backup")
shutil.copytree(os.path.join(home, "Maildir"), os.path.join(backup, "Maildir"))
for p in walk(backup):
    if os.path.basename(p).startswith("dovecot"):
        os.unlink(p)  # a file-level backup of the messages only
chown_tree(backup, dc.uid, dc.gid)
r = dc.doveadm("import", "-u", ALICE, "maildir:%s/Maildir" % backup, "Restored", "ALL")
tap.ok(r.returncode == 0, "doveadm import of an encrypted backup of the same account", r.stderr)
restored = maildir_files(home, "Restored.INBOX")
tap.ok(len(restored) == 3 and all_ciphertext(restored),
       "restored into Restored.INBOX, as ciphertext", len(restored))
imap = dc.imap_login(ALICE, "pw-alice")
got = [b for _f, b in imap_box(imap, "Restored.INBOX") or []]
tap.ok(got == [m for m, _fl in inbox_msgs], "the restored messages FETCH byte-identical",
       [None if b is None else len(b) for b in got])
imap.logout()

# ---------------------------------------------------------------- doveadm save into a folder
saved = message("saved %s" % marker, text_body(100000, 20, marker))
r = dc.doveadm("save", "-u", ALICE, "-m", "Archive", input=saved.decode())
tap.ok(r.returncode == 0, "doveadm save -m Archive", r.stderr)
arch = maildir_files(home, "Archive")
tap.ok(len(arch) == 2 and all_ciphertext(arch), "the saved message is ciphertext in Archive")
r = dc.doveadm("fetch", "-u", ALICE, "text", "mailbox", "Archive", "subject", "saved")
tap.ok(r.returncode == 0 and saved.decode() in r.stdout.replace("\n", "\r\n"),
       "doveadm fetch text decrypts it (server mode)", r.stderr + r.stdout[:200])

# ---------------------------------------------------------------- nothing in the clear
time.sleep(0.2)
paths = walk(home)
tap.diag("scanned %d files" % len(paths))
tap.eq(scan_for(paths, marker.encode()), [], "no file under the mail home holds the marker")

# ---------------------------------------------------------------- password mode
site.set("crypt", "mode", "password")
r = site.ctl("crypt", "init", DAVE, "--mode", "password", input="correct horse\n")
tap.eq(r.returncode, 0, "a password-mode key for dave")
dsrc = os.path.join(dc.dir, "src-dave")
dave_msgs = [(message("for dave %s" % marker, text_body(2000, 30, marker)), "S")]
plain_maildir(dsrc, {"": dave_msgs}, dc.uid, dc.gid)
r = dc.doveadm("import", "-u", DAVE, "maildir:%s" % dsrc, "", "ALL")
tap.ok(r.returncode == 0, "password mode: doveadm import needs only the public key", r.stderr)
dsaved = message("dave saved %s" % marker, b"saved for dave\r\n")
r = dc.doveadm("save", "-u", DAVE, input=dsaved.decode())
tap.ok(r.returncode == 0, "password mode: doveadm save", r.stderr)
dfiles = maildir_files(dc.home("dave"))
tap.ok(len(dfiles) == 2 and all_ciphertext(dfiles), "both stored as ciphertext")
r = dc.doveadm("fetch", "-u", DAVE, "text", "mailbox", "INBOX", "all")
tap.ok(r.returncode != 0 and marker not in r.stdout and "saved for dave" not in r.stdout,
       "password mode: doveadm fetch cannot read (no password), prints no plaintext",
       "rc=%d %s" % (r.returncode, r.stdout[:300]))
imap = dc.imap_login(DAVE, "correct horse")
got = [b for _f, b in imap_box(imap, "INBOX") or []]
tap.eq(got, [dave_msgs[0][0], dsaved], "dave logs in and reads both byte-identical")
imap.logout()
tap.eq(scan_for(walk(dc.home("dave")), marker.encode()), [], "nothing under dave's home holds the marker")

log = dc.log_text()
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
dc.stop()
tap.done()
