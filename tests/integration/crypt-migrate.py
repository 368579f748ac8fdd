#!/usr/bin/env python3
"""mailfortctl crypt migrate: plaintext mail stored before mailfort_crypt
was enabled is encrypted in place, in batches, and an interrupted run loses
nothing.

Mail is delivered and appended (INBOX and a subfolder) with the plugin off
and read once (so the mail cache holds headers), then the plugin is turned
on.  A first run with --limit leaves a mixed mailbox that reads correctly;
a leftover of a crashed run in tmp/ is cleaned up; a second run encrypts
the rest.  Afterwards every message reads byte-identical with its flags,
sizes and received dates kept, and no file under the mail home holds the
marker (the cache file with the plaintext headers is gone).
"""
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, mailfortctl_path, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import MAGIC  # noqa: E402

USER = "gina@example.test"


def message(i, marker, size):
    body = "".join("line %d of message %d %s\r\n" % (n, i, marker) for n in range(size // 40 + 1))
    return ("From: a@example.test\r\nTo: %s\r\nSubject: msg %d %s\r\n\r\n%s"
            % (USER, i, marker, body)).encode()


def files(home):
    out = []
    for root, _dirs, names in os.walk(os.path.join(home, "Maildir")):
        if os.path.basename(root) in ("cur", "new"):
            out += [os.path.join(root, n) for n in names]
    return out


def encrypted(paths):
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += f.read(8) == MAGIC
    return n


def differences(got, want):
    """Short description of what differs between two snapshots."""
    out = []
    for box in sorted(set(got) | set(want)):
        g, w = got.get(box, {}), want.get(box, {})
        for uid in sorted(set(g) | set(w)):
            if uid not in g or uid not in w:
                out.append("%s uid %d missing on one side" % (box, uid))
                continue
            for name, a, b in zip(("flags", "size", "date", "body"), g[uid], w[uid]):
                if a != b:
                    out.append("%s uid %d %s: %r != %r" % (box, uid, name,
                                                          a if name != "body" else len(a),
                                                          b if name != "body" else len(b)))
    return "\n".join(out)


def snapshot(imap, box):
    """{uid: (flags, size, internaldate, body)} of a mailbox."""
    imap.select(box)
    typ, data = imap.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])")
    out = {}
    for part in data:
        if not isinstance(part, tuple):
            continue
        meta = part[0].decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = " ".join(f for f in re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()
                         if f != "\\Recent")
        size = int(re.search(r"RFC822\.SIZE (\d+)", meta).group(1))
        date = re.search(r'INTERNALDATE "([^"]+)"', meta).group(1)
        out[uid] = (flags, size, date, part[1])
    return out


site = Site("crypt_migrate")
marker = "MFMIG%08x" % random.getrandbits(32)
dc = Dovecot("cmg", site=site, plugins=[], users={USER: "pw"})
dc.own_keys(site)
dc.start()

sizes = [300, 5000, 70000, 140000, 900]
for i, size in enumerate(sizes):
    dc.lmtp_deliver("a@example.test", [USER], message(i, marker, size))
imap = dc.imap_login(USER, "pw")
imap.create("Archive")
for i in range(3):
    imap.append("Archive", "(\\Seen)", None, message(100 + i, marker, 2000 * (i + 1)))
imap.select("INBOX")
imap.uid("STORE", "2", "+FLAGS", "(\\Flagged)")
before = {box: snapshot(imap, box) for box in ("INBOX", "Archive")}
imap.uid("FETCH", "1:*", "(ENVELOPE BODYSTRUCTURE)")
imap.logout()
home = dc.home("gina")
tap.eq(encrypted(files(home)), 0, "before: %d plaintext messages" % len(files(home)))
cache_hits = [p for p in files(home) + [os.path.join(r, n) for r, _d, ns in
              os.walk(os.path.join(home, "Maildir")) for n in ns if n == "dovecot.index.cache"]
              if marker.encode() in open(p, "rb").read() and "cache" in p]
tap.ok(len(cache_hits) > 0, "before: the mail cache holds the marker (what migrate must remove)")

# turn the plugin on; the first delivery makes the key (server mode)
dc.plugins = ["mailfort_crypt"]
dc.restart()
r = site.ctl("crypt", "init", USER, "--mode", "server")
tap.ok(r.returncode == 0, "key pair made with crypt init", r.stderr)

maildir = os.path.join(home, "Maildir")
r = site.ctl("crypt", "migrate", USER, maildir, "--limit", "3")
tap.ok(r.returncode == 0 and "3 encrypted" in r.stdout, "migrate --limit 3 encrypts three",
       r.stdout + r.stderr)
tap.eq(encrypted(files(home)), 3, "the mailbox is mixed now: 3 encrypted")
imap = dc.imap_login(USER, "pw")
mid = {box: snapshot(imap, box) for box in ("INBOX", "Archive")}
imap.logout()
tap.ok(mid == before, "a half-migrated mailbox reads the same (flags, sizes, dates, bodies)",
       differences(mid, before))

# a crash after writing the encrypted copy leaves it in tmp/
leftover = os.path.join(maildir, "tmp", "mfmigrate.999.1234.M1P1.vm")
with open(leftover, "wb") as f:
    f.write(b"partial")
r = site.ctl("crypt", "migrate", USER, maildir)
tap.ok(r.returncode == 0 and "left for the next run" in r.stdout, "second run finishes",
       r.stdout + r.stderr)
tap.ok(not os.path.exists(leftover), "it removed the leftover of an interrupted run", r.stderr)
tap.eq(encrypted(files(home)), len(files(home)), "every message is encrypted now")
owners = {(os.stat(p).st_uid, os.stat(p).st_gid) for p in files(home)}
tap.eq(owners, {(dc.uid, dc.gid)}, "files keep their owner")

imap = dc.imap_login(USER, "pw")
after = {box: snapshot(imap, box) for box in ("INBOX", "Archive")}
typ, data = imap.uid("SEARCH", None, "BODY", marker)
imap.select("INBOX")
typ, data = imap.uid("SEARCH", None, "BODY", marker)
imap.logout()
tap.ok(after == before, "after migration every message reads the same (flags, sizes, dates, bodies)",
       differences(after, before))
tap.eq(len(data[0].split()), len(sizes), "SEARCH BODY still finds them")

r = site.ctl("crypt", "migrate", USER, maildir)
tap.ok(r.returncode == 0 and "0 encrypted" in r.stdout, "a third run has nothing to do", r.stdout)

hits = []
for root, _dirs, names in os.walk(home):
    for n in names:
        p = os.path.join(root, n)
        with open(p, "rb") as f:
            if marker.encode() in f.read():
                hits.append(p)
tap.eq(hits, [], "no file under the mail home holds the marker")
# a run killed at an arbitrary moment (SIGKILL, no cleanup of its own)
dc.plugins = []
dc.restart()
imap = dc.imap_login(USER, "pw")
imap.create("Bulk")
for i in range(60):
    imap.append("Bulk", None, None, message(200 + i, marker, 300000))
bulk_before = snapshot(imap, "Bulk")
imap.logout()
dc.plugins = ["mailfort_crypt"]
dc.restart()
killed = 0
for delay in (0.03, 0.06, 0.1, 0.2):
    p = subprocess.Popen([mailfortctl_path(), "--config", site.conf, "crypt", "migrate", USER,
                          maildir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if p.poll() is None:
        p.kill()
        killed += 1
    p.wait()
bulk = [f for f in files(home) if "/.Bulk/" in f]
n_enc = encrypted(bulk)
tap.ok(killed > 0, "migrate runs were killed midway (%d times; %d of %d encrypted by then)"
       % (killed, n_enc, len(bulk)))
tap.eq(len(bulk), 60, "after the killed runs no message is lost or duplicated")
imap = dc.imap_login(USER, "pw")
mid = snapshot(imap, "Bulk")
imap.logout()
tap.ok(mid == bulk_before, "and every message reads the same", differences({"B": mid}, {"B": bulk_before}))
r = site.ctl("crypt", "migrate", USER, maildir)
tap.ok(r.returncode == 0, "the next run finishes", r.stdout + r.stderr)
bulk = [f for f in files(home) if "/.Bulk/" in f]
tap.eq((len(bulk), encrypted(bulk)), (60, 60), "then all 60 are encrypted, none lost")
tmpfiles = os.listdir(os.path.join(maildir, ".Bulk", "tmp"))
tap.eq(tmpfiles, [], "and no leftover remains in tmp/")
imap = dc.imap_login(USER, "pw")
after_bulk = snapshot(imap, "Bulk")
imap.logout()
tap.ok(after_bulk == bulk_before, "and every message reads the same",
       differences({"B": after_bulk}, {"B": bulk_before}))

log = dc.log_text()
tap.ok("Panic" not in log and "Error" not in log, "no error in the Dovecot log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "Error" in ln))
dc.stop()
tap.done()
