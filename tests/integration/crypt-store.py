#!/usr/bin/env python3
"""mailfort_crypt against a real Dovecot (maildir) and PostgreSQL.

Covers: LMTP delivery to an account without a key (server mode makes one),
APPEND then FETCH byte-identical for sizes around the 64 KiB chunk size,
RFC822.SIZE, partial FETCH across chunk boundaries, SEARCH BODY/HEADER,
COPY and MOVE, a mixed mailbox (plaintext stored before the plugin),
the same ENVELOPE/BODYSTRUCTURE as for plaintext, no marker string in any
file under the mail home or the temp dir, a flipped byte (NO for that
message, error in the log naming user, mailbox and UID, session goes on),
and password mode refusing delivery with 4xx for an account without a key.
"""
import os
import poplib
import random
import re
import shutil
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC, maildir_files, scan_for, walk  # noqa: E402

CHUNK = 65536


def message(subject, body, extra_headers=""):
    return ("From: Sender <sender@example.test>\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: <%s@example.test>\r\n%s"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (subject, subject.replace(" ", "."), extra_headers)).encode() + body


def text_body(size, seed):
    """size bytes of CRLF-terminated printable lines (deterministic)."""
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(70))
        out += line.encode() + b"\r\n"
    out = out[:size]
    if size >= 2:
        out[-2:] = b"\r\n"
    return bytes(out)


def fetch(imap, uid, item):
    typ, data = imap.uid("FETCH", str(uid), "(%s)" % item)
    if typ != "OK" or not data or data[0] is None:
        return typ, None
    for part in data:
        if isinstance(part, tuple):
            return typ, part[1]
    return typ, data[0]


def fetch_meta(imap, uid, item):
    typ, data = imap.uid("FETCH", str(uid), "(%s)" % item)
    flat = b""
    for part in data or []:
        if isinstance(part, tuple):
            flat += part[0] + part[1]
        elif part is not None:
            flat += part
    return typ, flat


def append(imap, box, msg):
    typ, data = imap.append(box, None, None, msg)
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    return typ, int(m.group(1)) if m else None


def file_for_uid(home, folder, uid):
    """The maildir file of uid, from dovecot-uidlist."""
    base = os.path.join(home, "Maildir", ("." + folder) if folder else "")
    with open(os.path.join(base, "dovecot-uidlist")) as f:
        for line in f.read().splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == str(uid):
                key = line.split(":", 1)[1] if ":" in line else parts[-1]
                key = key.split()[0] if " " in key else key
                for p in maildir_files(home, folder):
                    if os.path.basename(p).startswith(key.split(":")[0]):
                        return p
    return None


site = Site("crypt_store")
# an offline recovery key: every new private key is also sealed to it
escrow = os.path.join(site.dir, "escrow.pub")
with open(escrow, "wb") as f:
    f.write(os.urandom(32))
os.chmod(escrow, 0o644)
site.set("crypt", "escrow_public_key", escrow)
# the plugin connects as a login role that has only group mailfort_crypt
site.pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_crypt_plugin') "
             "THEN CREATE ROLE mf_crypt_plugin LOGIN IN ROLE mailfort_crypt; END IF; END $$;")
site.set("crypt", "conninfo", site.pg.conninfo(site.db, user="mf_crypt_plugin"))
dc = Dovecot("cst", site=site, plugins=["mailfort_crypt"],
             users={"alice@example.test": "pw-alice", "bob@example.test": "pw-bob",
                    "carol@example.test": "pw-carol"},
             extra="mail_temp_dir = %s\n")
tmpdir = os.path.join(dc.dir, "tmp")
os.makedirs(tmpdir)
os.chown(tmpdir, dc.uid, dc.gid)
dc.extra = dc.extra % tmpdir
# the mail processes run as the mail user and must read master.key
dc.own_keys(site)
dc.start()

# ---------------------------------------------------------------- LMTP delivery, key creation
tap.eq(site.scalar("SELECT count(*) FROM mailfort.mail_keys"), "0", "no mail keys before delivery")
marker = "MFMARK%08x" % random.getrandbits(32)
lmtp_msg = message("Subject %s" % marker, ("body line with %s\r\n" % marker).encode() * 3,
                   "X-Secret: %s\r\n" % marker)
refused = dc.lmtp_deliver("sender@example.test", ["alice@example.test"], lmtp_msg)
tap.eq(refused, {}, "LMTP delivery to an account without a key is accepted (server mode)")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.mail_keys k JOIN mailfort.accounts a "
                   "ON a.id = k.account_id WHERE a.username = 'alice@example.test' AND k.mode = 'server'"),
       "1", "server mode created alice's key pair on first delivery")
tap.eq(site.scalar("SELECT octet_length(k.escrow_wrap) FROM mailfort.mail_keys k JOIN "
                   "mailfort.accounts a ON a.id = k.account_id "
                   "WHERE a.username = 'alice@example.test'"),
       "80", "with an escrow copy sealed to the recovery key")
files = maildir_files(dc.home("alice"))
tap.eq(len(files), 1, "one message file after delivery")
with open(files[0], "rb") as f:
    stored = f.read()
tap.ok(stored.startswith(MAGIC), "delivered message is stored as mailfort ciphertext")

imap = dc.imap_login("alice@example.test", "pw-alice")
typ, _ = imap.select("INBOX")
tap.eq(typ, "OK", "SELECT INBOX")
typ, body = fetch(imap, 1, "BODY.PEEK[]")
tap.ok(body is not None and body.endswith(lmtp_msg) and body.startswith(b"Return-Path:"),
       "LMTP-delivered message FETCHes byte-identical (after the trace headers LMTP adds)", body)
lmtp_stored = body
# exercise the header paths that would normally fill the cache
fetch_meta(imap, 1, "ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM X-SECRET)]")

# ---------------------------------------------------------------- APPEND / FETCH, sizes, partial
sizes = [0, 1, 100, CHUNK - 300, CHUNK, CHUNK + 1, 2 * CHUNK + 17, 300000]
appended = {}
for i, size in enumerate(sizes):
    msg = message("size %d" % size, text_body(size, i))
    typ, uid = append(imap, "INBOX", msg)
    appended[uid] = msg
tap.ok(all(u is not None for u in appended), "APPEND of %d messages returns UIDs" % len(sizes))
imap.noop()
bad = []
for uid, msg in appended.items():
    typ, body = fetch(imap, uid, "BODY.PEEK[]")
    if body != msg:
        bad.append((uid, len(msg), None if body is None else len(body)))
tap.eq(bad, [], "APPEND then FETCH BODY[] is byte-identical for sizes around 64 KiB")
bad = []
for uid, msg in appended.items():
    typ, meta = fetch_meta(imap, uid, "RFC822.SIZE")
    m = re.search(rb"RFC822\.SIZE (\d+)", meta)
    if not m or int(m.group(1)) != len(msg):
        bad.append((uid, len(msg), meta))
tap.eq(bad, [], "RFC822.SIZE is the plaintext size")

big_uid = [u for u, m in appended.items() if len(m) > 300000][0]
big = appended[big_uid]
bad = []
for off, ln in [(0, 10), (CHUNK - 5, 10), (CHUNK, 7), (2 * CHUNK - 1, 2), (3 * CHUNK + 3, 100),
                (len(big) - 4, 10), (len(big) + 10, 5)]:
    typ, body = fetch(imap, big_uid, "BODY.PEEK[]<%d.%d>" % (off, ln))
    want = big[off:off + ln]
    if (body or b"") != want:
        bad.append((off, ln, body))
tap.eq(bad, [], "partial FETCH BODY[]<offset.length> across chunk boundaries")

# ---------------------------------------------------------------- SEARCH
typ, data = imap.uid("SEARCH", None, "BODY", marker)
tap.eq(data[0].split(), [b"1"], "SEARCH BODY finds the marker in the encrypted body")
typ, data = imap.uid("SEARCH", None, "HEADER", "X-Secret", marker)
tap.eq(data[0].split(), [b"1"], "SEARCH HEADER finds the marker in an encrypted header")
typ, data = imap.uid("SEARCH", None, "SUBJECT", '"size 300000"')
tap.eq(data[0].split(), [str(big_uid).encode()], "SEARCH SUBJECT")

# ---------------------------------------------------------------- mixed mailbox, same IMAP view
plain_msg = message("plain before plugin", text_body(5000, 99))
enc_uid = append(imap, "INBOX", plain_msg)[1]
cur = os.path.join(dc.home("alice"), "Maildir", "cur")
pfile = os.path.join(cur, "%d.M1P1.plaintext,S=%d,W=%d:2," % (int(time.time()), len(plain_msg),
                                                               len(plain_msg)))
with open(pfile, "wb") as f:
    f.write(plain_msg)
os.chown(pfile, dc.uid, dc.gid)
imap.noop()
typ, data = imap.uid("SEARCH", None, "SUBJECT", '"plain before plugin"')
uids = [int(x) for x in data[0].split()]
plain_uid = [u for u in uids if u != enc_uid]
tap.eq(len(plain_uid), 1, "plaintext message dropped into the maildir is seen")
plain_uid = plain_uid[0] if plain_uid else 0
typ, body = fetch(imap, plain_uid, "BODY.PEEK[]")
tap.eq(body, plain_msg, "mixed mailbox: plaintext message FETCHes unchanged")
items = "RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<10.100>"
_, m_enc = fetch_meta(imap, enc_uid, items)
_, m_plain = fetch_meta(imap, plain_uid, items)
strip = lambda b: re.sub(rb"^\d+ \(|UID \d+ ", b"", b)  # noqa: E731
tap.eq(strip(m_enc), strip(m_plain),
       "encrypted and plaintext copies answer SIZE/ENVELOPE/BODYSTRUCTURE/HEADER identically")

# ---------------------------------------------------------------- COPY / MOVE
imap.create("Archive")
imap.create("Trash")
typ, _ = imap.uid("COPY", str(big_uid), "Archive")
tap.eq(typ, "OK", "COPY to Archive")
typ, _ = imap.uid("MOVE", "1", "Trash")
tap.eq(typ, "OK", "MOVE to Trash")
imap.select("Archive")
typ, data = imap.uid("SEARCH", None, "ALL")
auid = data[0].split()[-1].decode()
typ, body = fetch(imap, auid, "BODY.PEEK[]")
tap.eq(body, big, "copied message FETCHes byte-identical")
imap.select("Trash")
typ, data = imap.uid("SEARCH", None, "BODY", marker)
tuid = data[0].split()
tap.eq(len(tuid), 1, "moved message is found by SEARCH BODY in Trash")
typ, body = fetch(imap, tuid[0].decode() if tuid else "1", "BODY.PEEK[]")
tap.eq(body, lmtp_stored, "moved message FETCHes byte-identical")
imap.select("INBOX")
typ, data = imap.uid("SEARCH", None, "BODY", marker)
tap.eq(data[0].split(), [], "moved message is gone from INBOX")
for folder in ("Archive", "Trash"):
    fs = maildir_files(dc.home("alice"), folder)
    ok = bool(fs)
    for p in fs:
        with open(p, "rb") as f:
            ok = ok and f.read(8) == MAGIC
    tap.ok(ok, "files in %s are ciphertext" % folder)

# ---------------------------------------------------------------- on-disk marker scan
imap.logout()
time.sleep(0.5)
paths = walk(dc.home("alice")) + walk(tmpdir)
caches = [p for p in paths if p.endswith("dovecot.index.cache")]
tap.diag("scanned %d files (%d caches)" % (len(paths), len(caches)))
tap.eq(scan_for(paths, marker.encode()), [],
       "no file under the mail home or the temp dir contains the marker")
log_hits = [ln for ln in dc.log_text().splitlines() if marker in ln and "msgid=" not in ln]
tap.eq(log_hits, [], "the Dovecot log holds the marker only in lmtp's msgid= lines (deliver_log_format)")
tap.eq(scan_for(paths, b"plain before plugin"), [p for p in scan_for(paths, b"plain before plugin")
                                                 if p == pfile],
       "only the deliberately plaintext file holds its subject")

# ---------------------------------------------------------------- a flipped byte
imap = dc.imap_login("alice@example.test", "pw-alice")
imap.select("INBOX")
victim = message("victim", text_body(2000, 7))
good = message("good", text_body(3000, 8))
vuid = append(imap, "INBOX", victim)[1]
guid = append(imap, "INBOX", good)[1]
imap.logout()
vfile = file_for_uid(dc.home("alice"), "", vuid)
tap.ok(vfile is not None, "found the victim's file")
if vfile:
    with open(vfile, "r+b") as f:
        f.seek(500)
        b = f.read(1)
        f.seek(500)
        f.write(bytes([b[0] ^ 0x01]))
imap = dc.imap_login("alice@example.test", "pw-alice")
imap.select("INBOX")
try:
    typ, data = imap.uid("FETCH", str(vuid), "(BODY.PEEK[])")
    got = [p for p in data if isinstance(p, tuple)]
    tap.ok(typ == "NO" and not got, "FETCH of the corrupted message answers NO, no data",
           "%s %r" % (typ, data))
except Exception as e:  # noqa: BLE001 - imaplib raises on a dropped connection
    tap.ok(False, "FETCH of the corrupted message answers NO", e)
typ, body = fetch(imap, guid, "BODY.PEEK[]")
tap.eq(body, good, "the session goes on: another message FETCHes fine")
typ, _ = imap.noop()
tap.eq(typ, "OK", "the session is still usable")
imap.logout()
log = dc.log_text()
line = [ln for ln in log.splitlines() if "mailfort_crypt" in ln and "decrypt" in ln]
tap.ok(line and "alice" in line[-1] and "INBOX" in line[-1] and ("UID=%d" % vuid) in line[-1],
       "the log names account, mailbox and UID of the corrupted message", "\n".join(line[-3:]))
tap.ok("Panic" not in log and "Fatal" not in log, "no panic or fatal error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Fatal" in ln))

# ---------------------------------------------------------------- damage inside a large message
# Found only when the damaged chunk is reached, after the literal's size was
# sent: Dovecot must close the connection.  No wrong byte may reach the
# client, the log names the message, and the next session works.
imap = dc.imap_login("alice@example.test", "pw-alice")
imap.select("INBOX")
big2 = message("big victim", text_body(4 * CHUNK, 11))
buid = append(imap, "INBOX", big2)[1]
imap.logout()
bfile = file_for_uid(dc.home("alice"), "", buid)
with open(bfile, "r+b") as f:
    f.seek(136 + 2 * (CHUNK + 16) + 1000)  # inside chunk 2
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x20]))
imap = dc.imap_login("alice@example.test", "pw-alice")
imap.select("INBOX")
got = None
try:
    typ, data = imap.uid("FETCH", str(buid), "(BODY.PEEK[])")
    got = [p[1] for p in data if isinstance(p, tuple)]
except Exception:  # noqa: BLE001 - the server closes the connection
    got = "disconnected"
tap.ok(got == "disconnected" or got == [] or (got and not big2.startswith(got[0]) and
                                               len(got[0]) < len(big2)),
       "damage in a middle chunk: the connection is closed, no wrong data delivered",
       repr(got)[:200])
try:
    imap.logout()
except Exception:  # noqa: BLE001
    pass
imap = dc.imap_login("alice@example.test", "pw-alice")
imap.select("INBOX")
typ, body = fetch(imap, guid, "BODY.PEEK[]")
tap.eq(body, good, "a new session reads the other messages")
typ, body = fetch(imap, buid, "BODY.PEEK[]<0.1000>")
tap.eq(body, big2[:1000], "and the undamaged start of the damaged message (partial FETCH)")
imap.logout()
log = dc.log_text()
tap.ok(re.search(r"UID=%d: .*mailfort_crypt.*chunk 2 failed" % buid, log) is not None,
       "the log names the message and the damaged chunk")

# ---------------------------------------------------------------- doveadm save, POP3
saved = message("doveadm saved %s" % marker, b"saved by doveadm\r\n")
r = dc.doveadm("save", "-u", "bob@example.test", input=saved.decode())
tap.eq(r.returncode, 0, "doveadm save works with the plugin loaded")
bob_files = maildir_files(dc.home("bob"))
ok = len(bob_files) == 1
for p in bob_files:
    with open(p, "rb") as f:
        ok = ok and f.read(8) == MAGIC
tap.ok(ok, "doveadm save stores ciphertext (and made bob's key)")
pop = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=30)
pop.user("bob@example.test")
pop.pass_("pw-bob")
resp, lines, octets = pop.retr(1)
pop.quit()
tap.eq(b"\r\n".join(lines) + b"\r\n", saved, "POP3 RETR returns the plaintext")

# ---------------------------------------------------------------- password mode, no key: 4xx
site.set("crypt", "mode", "password")
code = None
try:
    dc.lmtp_deliver("sender@example.test", ["carol@example.test"], message("to carol", b"hi\r\n"))
except smtplib.SMTPDataError as e:
    code = e.smtp_code
except smtplib.SMTPRecipientsRefused as e:
    code = list(e.recipients.values())[0][0]
tap.ok(code is not None and 400 <= code < 500,
       "password mode: delivery to an account without a key gets a 4xx", code)
tap.eq(maildir_files(dc.home("carol")), [], "and nothing is stored for carol")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.mail_keys k JOIN mailfort.accounts a "
                   "ON a.id = k.account_id WHERE a.username = 'carol@example.test'"), "0",
       "and no key is created in password mode")
site.set("crypt", "mode", "server")

# ---------------------------------------------------------------- database unreachable: 4xx
good_conninfo = site.sections["crypt"]["conninfo"]
site.set("crypt", "conninfo", "host=127.0.0.1 port=1 dbname=nowhere")
code = None
try:
    dc.lmtp_deliver("sender@example.test", ["dora@example.test"], message("db down", b"x\r\n"))
except smtplib.SMTPDataError as e:
    code = e.smtp_code
except smtplib.SMTPRecipientsRefused as e:
    code = list(e.recipients.values())[0][0]
tap.ok(code is not None and 400 <= code < 500,
       "database unreachable: delivery gets a 4xx (fail closed, sender retries)", code)
tap.eq(maildir_files(dc.home("dora")), [], "and nothing is stored in the clear")
site.set("crypt", "conninfo", good_conninfo)
tap.eq(dc.lmtp_deliver("sender@example.test", ["dora@example.test"], message("db back", b"y\r\n")),
       {}, "once the database is back, delivery works again")

dc.stop()
tap.done()
