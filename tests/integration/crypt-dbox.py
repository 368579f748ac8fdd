#!/usr/bin/env python3
"""mailfort_crypt with Dovecot's dbox storages (sdbox, mdbox), against a real Dovecot.

For each: LMTP delivery and IMAP APPEND store the message as mailfort
ciphertext inside the dbox file (one ciphertext per message), FETCH is
byte-identical, RFC822.SIZE and the physical size are those of the
plaintext, partial FETCH inside the second chunk, SEARCH BODY, COPY and MOVE
between folders, doveadm save; no file under the mail home holds the
marker.  sdbox: a flipped byte gets NO for that message and the session
goes on.  mdbox: after an expunge, doveadm purge rewrites the storage file
and the remaining messages stay ciphertext and readable.  Both: doveadm
altmove to the alternate storage keeps them ciphertext and readable.
Converting a maildir account to mdbox with doveadm backup stores
ciphertext that reads back byte-identical.
"""
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, walk  # noqa: E402

USER = "alice@example.test"


def message(subject, size, marker):
    rnd = random.Random(size)
    body = bytearray(("about %s\r\n" % marker).encode())
    while len(body) < size:
        body += "".join(rnd.choice("abcdefghij klmnop") for _ in range(70)).encode() + b"\r\n"
    return ("From: a@example.test\r\nTo: %s\r\nSubject: %s %s\r\nMessage-ID: <%08x@example.test>\r\n\r\n"
            % (USER, subject, marker, random.getrandbits(32))).encode() + bytes(body)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def mail_files(home, kind):
    """The files that hold messages: sdbox u.N, mdbox storage/m.N."""
    pat = r"^u\.\d+$" if kind == "sdbox" else r"^m\.\d+$"
    return [p for p in walk(home) if re.match(pat, os.path.basename(p))]


def fetch(imap, uid, item="BODY.PEEK[]"):
    typ, data = imap.uid("FETCH", str(uid), "(%s)" % item)
    parts = [p for p in data if isinstance(p, tuple)] if data else []
    return typ, (parts[0][1] if parts else None), (parts[0][0] if parts else b"")


def append(imap, box, msg):
    typ, data = imap.append(box, None, None, msg)
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    return int(m.group(1)) if m else None


site = Site("crypt_dbox")
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))

for kind in ("sdbox", "mdbox"):
    dc = Dovecot("c" + kind, site=site, plugins=["mailfort_crypt"], users={USER: "pw"},
                 mail_location="%s:~/%s:ALT=~/alt" % (kind, kind),
                 extra="imap_fetch_failure = no-after\n")
    dc.own_keys(site)
    dc.start()
    home = dc.home("alice")
    marker = "MFDBOX%08x" % random.getrandbits(32)

    m_lmtp = message("delivered", 150000, marker)
    tap.eq(dc.lmtp_deliver("a@example.test", [USER], m_lmtp), {}, "%s: LMTP delivery" % kind)
    imap = dc.imap_login(USER, "pw")
    imap.select("INBOX")
    m_app = message("appended", 200000, marker)
    m_small = message("small", 300, marker)
    u_app = append(imap, "INBOX", m_app)
    u_small = append(imap, "INBOX", m_small)
    tap.ok(u_app is not None and u_small is not None, "%s: APPEND" % kind)
    files = mail_files(home, kind)
    count = sum(read(p).count(MAGIC) for p in files)
    tap.ok(count == 3, "%s: three ciphertexts in the message files" % kind,
           "%d in %s" % (count, [os.path.basename(p) for p in files]))

    typ, body, _ = fetch(imap, 1)
    tap.ok(body is not None and body.startswith(b"Return-Path:") and body.endswith(m_lmtp),
           "%s: the delivered message FETCHes byte-identical (after the trace headers)" % kind)
    bad = []
    for uid, msg in ((u_app, m_app), (u_small, m_small)):
        typ, body, head = fetch(imap, uid, "RFC822.SIZE BODY.PEEK[]")
        m = re.search(rb"RFC822\.SIZE (\d+)", head)
        if body != msg or not m or int(m.group(1)) != len(msg):
            bad.append((uid, len(msg), None if body is None else len(body), head))
    tap.eq(bad, [], "%s: APPEND then FETCH byte-identical, RFC822.SIZE of the plaintext" % kind)
    r = dc.doveadm("fetch", "-u", USER, "size.physical", "mailbox", "INBOX", "uid", str(u_app))
    got = re.search(r"size\.physical: (\d+)", r.stdout)
    tap.ok(got and int(got.group(1)) == len(m_app.replace(b"\r\n", b"\n")),
           "%s: the physical size is that of the stored plaintext (LF line ends)" % kind,
           r.stdout + r.stderr)
    typ, body, _ = fetch(imap, u_app, "BODY.PEEK[]<70000.100>")
    tap.eq(body, m_app[70000:70100], "%s: partial FETCH inside the second chunk" % kind)
    typ, data = imap.uid("SEARCH", None, "BODY", marker)
    tap.eq(len(data[0].split()), 3, "%s: SEARCH BODY finds the marker in all three" % kind)

    imap.create("Archive")
    tap.eq(imap.uid("COPY", str(u_app), "Archive")[0], "OK", "%s: COPY to Archive" % kind)
    tap.eq(imap.uid("MOVE", "1", "Archive")[0], "OK", "%s: MOVE to Archive" % kind)
    imap.select("Archive")
    typ, data = imap.uid("SEARCH", None, "ALL")
    got = [fetch(imap, u.decode())[1] for u in data[0].split()]
    tap.ok(len(got) == 2 and got[0] == m_app and got[1] is not None and got[1].endswith(m_lmtp),
           "%s: copied and moved messages FETCH byte-identical" % kind,
           [None if b is None else len(b) for b in got])
    imap.logout()

    m_saved = message("saved", 1000, marker)
    r = dc.doveadm("save", "-u", USER, "-m", "Archive", input=m_saved.decode())
    tap.ok(r.returncode == 0, "%s: doveadm save" % kind, r.stderr)

    if kind == "sdbox":
        # a flipped byte in the small message (one chunk): NO, the session goes on
        small = [p for p in mail_files(home, kind) if "/INBOX/" in p and len(read(p)) < 2000]
        tap.eq(len(small), 1, "sdbox: found the small message's file")
        if small:
            data = bytearray(read(small[0]))
            data[data.find(MAGIC) + 300] ^= 0x04
            with open(small[0], "wb") as f:
                f.write(data)
        imap = dc.imap_login(USER, "pw")
        imap.select("INBOX")
        typ, body, _ = fetch(imap, u_small)
        tap.ok(typ == "NO" and body is None, "sdbox: FETCH of the damaged message answers NO",
               (typ, body))
        typ, body, _ = fetch(imap, u_app)
        tap.eq(body, m_app, "sdbox: the session goes on, another message FETCHes fine")
        imap.logout()
    else:
        # mdbox: expunge, then purge rewrites m.* without the expunged message
        count = sum(read(p).count(MAGIC) for p in mail_files(home, kind))
        tap.eq(count, 4, "mdbox: four ciphertexts in storage (COPY and MOVE add references)")
        imap = dc.imap_login(USER, "pw")
        imap.select("INBOX")
        imap.uid("STORE", str(u_small), "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
        imap.logout()
        r = dc.doveadm("purge", "-u", USER)
        tap.ok(r.returncode == 0, "mdbox: doveadm purge", r.stderr)
        files = mail_files(home, kind)
        count = sum(read(p).count(MAGIC) for p in files)
        tap.ok(count == 3, "mdbox: after purge, three ciphertexts are left", count)
        imap = dc.imap_login(USER, "pw")
        imap.select("INBOX")
        typ, body, _ = fetch(imap, u_app)
        tap.eq(body, m_app, "mdbox: after purge, INBOX reads byte-identical")
        imap.select("Archive")
        typ, data = imap.uid("SEARCH", None, "ALL")
        got = [fetch(imap, u.decode())[1] for u in data[0].split()]
        tap.ok(len(got) == 3 and got[0] == m_app and got[2] == m_saved,
               "mdbox: after purge, Archive reads byte-identical",
               [None if b is None else len(b) for b in got])
        imap.logout()

    # alternate storage: altmove moves the files as they are
    r = dc.doveadm("altmove", "-u", USER, "ALL")
    alt = [p for p in mail_files(home, kind) if "/alt/" in p]
    tap.ok(r.returncode == 0 and alt and alt == mail_files(home, kind)
           and all(MAGIC in read(p) for p in alt),
           "%s: doveadm altmove moves every message file to ALT, still ciphertext" % kind,
           r.stderr + repr(mail_files(home, kind)))
    imap = dc.imap_login(USER, "pw")
    imap.select("INBOX")
    typ, body, _ = fetch(imap, u_app)
    tap.eq(body, m_app, "%s: a message in ALT FETCHes byte-identical" % kind)
    imap.logout()

    time.sleep(0.2)
    tap.eq([p for p in walk(home) if marker.encode() in read(p)], [],
           "%s: no file under the mail home holds the marker" % kind)
    log = dc.log_text()
    tap.ok("Panic" not in log and "Fatal" not in log, "%s: no panic or fatal error" % kind,
           "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))
    dc.stop()

# ---------------------------------------------------------------- maildir -> mdbox with dsync
# converting an account's storage (doveadm backup into the new location,
# then switching mail_location) reads each message decrypted and saves it
# encrypted again
dc = Dovecot("cconv", site=site, plugins=["mailfort_crypt"], users={USER: "pw"},
             extra="namespace inbox {\n  inbox = yes\n  separator = /\n}\n")
dc.start()
home = dc.home("alice")
marker = "MFCONV%08x" % random.getrandbits(32)
m_conv = message("converted", 100000, marker)
tap.eq(dc.lmtp_deliver("a@example.test", [USER], m_conv), {}, "maildir: LMTP delivery")
r = dc.doveadm("backup", "-u", USER, "mdbox:~/mdbox")
tap.ok(r.returncode == 0, "doveadm backup from maildir into mdbox", r.stderr)
conv = mail_files(home, "mdbox")
tap.ok(conv and sum(read(p).count(MAGIC) for p in conv) == 1,
       "the mdbox copy is ciphertext", [os.path.basename(p) for p in conv])
dc.stop()
dc.mail_location = "mdbox:~/mdbox"
dc.start()
imap = dc.imap_login(USER, "pw")
imap.select("INBOX")
typ, body, _ = fetch(imap, 1)
tap.ok(body is not None and body.endswith(m_conv), "after switching to mdbox it FETCHes byte-identical")
imap.logout()
tap.eq([p for p in walk(home) if marker.encode() in read(p)], [],
       "no file under the mail home holds the marker")
dc.stop()
tap.done()
