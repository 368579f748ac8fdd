#!/usr/bin/env python3
"""Strict mode and the kcmvp profile, through a real Dovecot.

Strict mode ([crypt] require_encrypted = yes): the attacker can write the
mail store and knows the account's public key (it is no secret).  A
plaintext file planted in the maildir and a ciphertext forged with only the
public key (format version 2, written here with libsodium and AES-GCM, as
the format is documented) are both refused over IMAP with a NO naming the
cause, never served; each refusal is an audit event, and mailfort-auditd
raises the critical planted_mail alert.  Mail delivered by the site carries
the server authenticator and is served.

The kcmvp profile: mail delivered under the default profile is migrated
with mailfortctl crypt migrate --profile kcmvp: a batch (--limit) moves
exactly its share, a run killed midway (stopped once it has moved a
message, then SIGKILLed) loses nothing and the next run resumes, and a run under concurrent LMTP delivery ends with every message
under ARIA-256-GCM / ECDH P-256 (crypt status: 0 under unlisted
algorithms), all of them read back byte for byte over IMAP.  In password
mode under kcmvp: crypt init wraps a P-256 key with PBKDF2 (MFW2), a login
reads the mail, and migrate (which needs the password) rotates an X25519
account and re-encrypts its mail.
"""
import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, mailfortctl_path, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from auditlib import Auditd, events  # noqa: E402

USER, USER2 = "hana@example.test", "jun@example.test"
sodium = ctypes.CDLL("libsodium.so.23")
assert sodium.sodium_init() >= 0


def forge_v2(pk, plaintext):
    """A version 2 ciphertext sealed to pk, made with the public key only."""
    k = ctypes.create_string_buffer(32)
    sodium.randombytes_buf(k, 32)
    h = bytearray(b"\x89MFC\r\n\x1a\n" + bytes([2, 0]) + (136).to_bytes(2, "little")
                  + (65536).to_bytes(4, "little") + os.urandom(16))
    kid = ctypes.create_string_buffer(8)
    sodium.crypto_generichash(kid, ctypes.c_size_t(8), pk, ctypes.c_ulonglong(32), None,
                              ctypes.c_size_t(0))
    h += kid.raw
    sealed = ctypes.create_string_buffer(80)
    assert sodium.crypto_box_seal(sealed, k, ctypes.c_ulonglong(32), pk) == 0
    h += sealed.raw
    khdr, kchunk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(32)
    sodium.crypto_kdf_derive_from_key(khdr, ctypes.c_size_t(32), ctypes.c_uint64(1),
                                      b"mfmail02", k)
    sodium.crypto_kdf_derive_from_key(kchunk, ctypes.c_size_t(32), ctypes.c_uint64(2),
                                      b"mfmail02", k)
    tag = ctypes.create_string_buffer(16)
    sodium.crypto_generichash(tag, ctypes.c_size_t(16), bytes(h), ctypes.c_ulonglong(120),
                              khdr, ctypes.c_size_t(32))
    h += tag.raw
    nonce = (0).to_bytes(8, "little") + b"\x00\x00\x00\x80"
    ad = tag.raw + (0).to_bytes(8, "little") + b"\x01"
    return bytes(h) + AESGCM(kchunk.raw).encrypt(nonce, plaintext, ad)


def message(i, marker, size=300):
    body = "".join("line %d of message %d %s\r\n" % (n, i, marker) for n in range(size // 40 + 1))
    return ("From: a@example.test\r\nTo: x@example.test\r\nSubject: msg %d %s\r\n\r\n%s"
            % (i, marker, body)).encode()


def bodies(imap, box="INBOX"):
    imap.select(box)
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    return {re.search(rb"Subject: msg (\d+)", p[1]).group(1).decode(): p[1]
            for p in data if isinstance(p, tuple)}


def plant(dc, user, name, content):
    path = os.path.join(dc.home(user.split("@")[0]), "Maildir", "new", name)
    with open(path, "wb") as f:
        f.write(content)
    os.chown(path, dc.uid, dc.gid)
    return path


site = Site("crypt_strict", extra={"crypt": {"require_encrypted": "yes"}})
auditd = Auditd(site)
dc = Dovecot("cst", site=site, plugins=["mailfort_crypt"], users={USER: "pw", USER2: "pw2"})
dc.own_keys(site)
dc.start()
marker = "MFST%08x" % random.getrandbits(32)

# ---- strict mode ----
for i in range(2):
    dc.lmtp_deliver("a@example.test", [USER], message(i, marker))
pk = bytes.fromhex(site.scalar("SELECT encode(public_key, 'hex') FROM mailfort.mail_keys k "
                               "JOIN mailfort.accounts a ON a.id = k.account_id "
                               "WHERE a.username = :'u'", params={"u": USER}))
tap.eq(len(pk), 32, "server mode made an X25519 key on first delivery")
plant(dc, USER, "1700000000.planted.host:2,", b"From: boss@example.test\r\nSubject: msg 90 urgent\r\n"
      b"\r\nPlease wire EUR 90,000 today.\r\n")
plant(dc, USER, "1700000001.forged.host:2,", forge_v2(pk, b"From: boss@example.test\r\n"
      b"Subject: msg 91 urgent\r\n\r\nPlease wire EUR 90,000 today (forged).\r\n"))
imap = dc.imap_login(USER, "pw")
imap.select("INBOX")
typ, data = imap.uid("SEARCH", None, "ALL")
uids = data[0].split()
tap.eq(len(uids), 4, "the mailbox lists 2 delivered + 2 planted messages")
served, refused = 0, []
for uid in uids:
    typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    text = b" ".join(p if isinstance(p, bytes) else p[1] for p in data if p)
    if typ == "OK" and b"msg " in text:
        served += 1
        tap.ok(b"EUR 90,000" not in text, "uid %s served, and it is not planted" % uid.decode())
    else:
        refused.append((uid, typ, text))
tap.eq(served, 2, "the two delivered messages are served")
tap.eq(len(refused), 2, "the planted plaintext and the forged ciphertext are refused")
tap.ok(any(b"plaintext in the mail store" in t for _u, _t, t in refused),
       "the plaintext is refused naming the cause", repr(refused))
tap.ok(any(b"no server authenticator" in t for _u, _t, t in refused),
       "the forged ciphertext is refused: no server authenticator", repr(refused))
typ, data = imap.uid("FETCH", "1:*", "(BODYSTRUCTURE)")
tap.ok(all(b"EUR" not in (p if isinstance(p, bytes) else p[1]) for p in data if p),
       "nothing of them leaks through BODYSTRUCTURE either")
typ, data = imap.noop()
tap.eq(typ, "OK", "the session survives the refusals")
imap.logout()
auditd.once()
evs = [e for e in events(site, "type = 'crypt'") if e.get("result") == "refused"]
tap.eq(len(evs) >= 2 and {e.get("user") for e in evs}, {USER},
       "refusals are audit events of the account (%d)" % len(evs))
alerts = site.sql("SELECT rule, severity, summary FROM mailfort.alerts WHERE rule = 'planted_mail'")
tap.ok(len(alerts) >= 2 and all(a[1] == "critical" for a in alerts),
       "and critical planted_mail alerts (%d)" % len(alerts), repr(alerts))
log = dc.log_text()
tap.ok("refused to serve UID" in log, "the refusal is in the Dovecot log")

# ---- migration to the kcmvp profile ----
for i in range(40):
    dc.lmtp_deliver("a@example.test", [USER2], message(i, marker, 3000 + 2000 * (i % 5)))
maildir = os.path.join(dc.home("jun"), "Maildir")
site.set("crypto", "profile", "kcmvp")
imap = dc.imap_login(USER2, "pw2")
want = bodies(imap)
imap.logout()
tap.eq(len(want), 40, "40 messages under the default profile")
r = site.ctl("crypt", "status", USER2, maildir)
tap.ok("under algorithms not on the kcmvp list: 40" in r.stdout, "status counts 40 unlisted",
       r.stdout + r.stderr)



def unlisted():
    """crypt status: messages not yet under the kcmvp algorithms (None: unreadable)."""
    st = site.ctl("crypt", "status", USER2, maildir)
    found = re.search(r"under algorithms not on the kcmvp list: (\d+)", st.stdout)
    return int(found.group(1)) if found else None


# a batch: --limit stops after 10 messages (the key is rotated first)
r = site.ctl("crypt", "migrate", USER2, maildir, "--profile", "kcmvp", "--limit", "10")
tap.ok(r.returncode == 0 and unlisted() == 30, "migrate --limit 10 moves 10 and stops (30 left)",
       r.stdout + r.stderr)

# a run killed midway: it runs in short slices (SIGCONT, 5 ms, SIGSTOP) until
# crypt status sees it has moved a message, then is killed while stopped,
# wherever it was (between messages, in a tmp/ file, before a rename)
p = subprocess.Popen([mailfortctl_path(), "--config", site.conf, "crypt", "migrate", USER2,
                      maildir, "--profile", "kcmvp"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
p.send_signal(signal.SIGSTOP)
left = 30
deadline = time.time() + 120
while p.poll() is None and left == 30 and time.time() < deadline:
    p.send_signal(signal.SIGCONT)
    time.sleep(0.005)
    p.send_signal(signal.SIGSTOP)
    left = unlisted()
p.kill()
p.wait()
tap.ok(p.returncode == -signal.SIGKILL and left is not None and 0 < left < 30,
       "a migrate run was killed midway (%s of 30 left, exit %s)" % (left, p.returncode))
r = site.ctl("crypt", "migrate", USER2, maildir, "--profile", "kcmvp")
tap.ok(r.returncode == 0 and unlisted() == 0, "the next run resumes and finishes (0 left)",
       r.stdout + r.stderr)
imap = dc.imap_login(USER2, "pw2")
mid = bodies(imap)
imap.logout()
tap.ok(mid == want, "after the killed runs every message reads the same",
       "%d of %d" % (len(mid), len(want)))
r = site.ctl("crypt", "status", USER2, maildir)
tap.ok("p256" in r.stdout and "x25519" in r.stdout, "the key was rotated: p256 current, x25519 kept",
       r.stdout)

stop = threading.Event()
delivered = []


def deliver():
    i = 100
    while not stop.is_set():
        dc.lmtp_deliver("a@example.test", [USER2], message(i, marker, 5000))
        delivered.append(i)
        i += 1


t = threading.Thread(target=deliver)
t.start()
time.sleep(0.5)
r = site.ctl("crypt", "migrate", USER2, maildir, "--profile", "kcmvp")
time.sleep(0.5)
stop.set()
t.join()
tap.ok(r.returncode == 0 and "re-encrypted (kcmvp profile)" in r.stdout,
       "migrate under concurrent delivery finishes", r.stdout + r.stderr)
tap.ok(len(delivered) > 0, "%d messages were delivered meanwhile" % len(delivered))
r = site.ctl("crypt", "status", USER2, maildir)
tap.ok("under algorithms not on the kcmvp list: 0" in r.stdout
       and "without server authenticator: 0" in r.stdout,
       "0 messages under unlisted algorithms, all with authenticator", r.stdout)
tap.ok(re.search(r"version 3 \(ARIA-256-GCM, ECDH-P256-KBKDF\):\s+%d" % (40 + len(delivered)),
                 r.stdout) is not None, "all %d are version 3" % (40 + len(delivered)), r.stdout)
imap = dc.imap_login(USER2, "pw2")
after = bodies(imap)
imap.logout()
tap.eq(len(after), 40 + len(delivered), "no message lost or duplicated")
tap.ok(all(after[k] == v for k, v in want.items()), "the old messages read byte for byte the same")
tap.ok(all(marker.encode() in after[str(i)] for i in delivered),
       "the concurrently delivered ones read back")
log = dc.log_text()
tap.ok("Panic" not in log and "cannot decrypt" not in log, "no decryption failure in the log",
       "\n".join(ln for ln in log.splitlines() if "Panic" in ln or "cannot decrypt" in ln))
dc.stop()

# ---- password mode: PBKDF2 wraps, and a migration that needs the password ----
KIM, LEE = "kim@example.test", "lee@example.test"
sp = Site("crypt_kcmvp_pw", extra={"crypt": {"mode": "password", "require_encrypted": "yes"}})
r = sp.ctl("crypt", "init", LEE, "--mode", "password", input="lee long password\n")
tap.ok(r.returncode == 0 and "x25519" in r.stdout, "default profile: an X25519 password-mode key",
       r.stdout + r.stderr)
dp = Dovecot("cpk", site=sp, plugins=["mailfort_crypt"],
             users={KIM: "kim long password", LEE: "lee long password"},
             passdb_extra="override_fields = userdb_mailfort_crypt_password=%w")
dp.own_keys(sp)
dp.start()
for i in range(5):
    dp.lmtp_deliver("a@example.test", [LEE], message(i, marker, 70000 if i == 0 else 900))
sp.set("crypto", "profile", "kcmvp")
r = sp.ctl("crypt", "init", KIM, "--mode", "password", input="kim long password\n")
tap.ok(r.returncode == 0 and "p256" in r.stdout, "kcmvp profile: crypt init makes a P-256 key",
       r.stdout + r.stderr)
row = sp.sql("SELECT octet_length(k.public_key), encode(substr(k.wrapped_private, 1, 4), 'escape'), "
             "octet_length(k.wrapped_private) FROM mailfort.mail_keys k JOIN mailfort.accounts a "
             "ON a.id = k.account_id WHERE a.username = :'u'", params={"u": KIM})
tap.eq(row, [["65", "MFW2", "89"]], "its private key is wrapped with PBKDF2 + ARIA-256-GCM (MFW2)")
for i in range(3):
    dp.lmtp_deliver("a@example.test", [KIM], message(i, marker, 70000 if i == 0 else 900))
heads = []
for root, _d, names in os.walk(os.path.join(dp.home("kim"), "Maildir")):
    if os.path.basename(root) in ("cur", "new"):
        heads += [open(os.path.join(root, n), "rb").read(10) for n in names]
tap.ok(len(heads) == 3 and all(h[8] == 3 and h[9] == 1 for h in heads),
       "delivery writes version 3 with the server authenticator (needs only the public key)")
imap = dp.imap_login(KIM, "kim long password")
got = bodies(imap)
imap.logout()
tap.ok(len(got) == 3 and all(marker.encode() in b for b in got.values()),
       "a password-mode login unwraps the P-256 key and reads its mail")
# an app password made under kcmvp (HMAC-SHA256 hash) with its own wrap
r = sp.ctl("apppass", "add", KIM, "--label", "phone")
m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
app = m.group(1) if m else "none"
r = sp.ctl("crypt", "app-wrap", KIM, "phone", input="kim long password\n%s\n" % app)
tap.ok(r.returncode == 0, "crypt app-wrap wraps the P-256 key under the app password",
       r.stdout + r.stderr)
dp.users[KIM] = app
dp.restart()
imap = dp.imap_login(KIM, app)
got = bodies(imap)
imap.logout()
tap.ok(len(got) == 3 and all(marker.encode() in b for b in got.values()),
       "a login with that app password finds its wrap (by HMAC hash) and reads the mail")
lee_dir = os.path.join(dp.home("lee"), "Maildir")
imap = dp.imap_login(LEE, "lee long password")
lee_want = bodies(imap)
imap.logout()
r = sp.ctl("crypt", "migrate", LEE, lee_dir, "--profile", "kcmvp", input="wrong password\n")
nkeys = sp.scalar("SELECT count(*) FROM mailfort.mail_keys k JOIN mailfort.accounts a "
                  "ON a.id = k.account_id WHERE a.username = :'u'", params={"u": LEE})
tap.ok(r.returncode != 0 and nkeys == "1", "migrate with a wrong password fails and makes no key",
       r.stdout + r.stderr)
r = sp.ctl("crypt", "migrate", LEE, lee_dir, "--profile", "kcmvp", input="lee long password\n")
tap.ok(r.returncode == 0 and "new p256 key pair" in r.stdout and "5 re-encrypted" in r.stdout,
       "password mode: migrate reads the password, rotates to P-256, re-encrypts 5",
       r.stdout + r.stderr)
wrapped = sp.scalar("SELECT encode(substr(k.wrapped_private, 1, 4), 'escape') FROM mailfort.mail_keys k "
                    "JOIN mailfort.accounts a ON a.id = k.account_id WHERE a.username = :'u' "
                    "AND k.retired_at IS NULL", params={"u": LEE})
tap.eq(wrapped, "MFW2", "the new key is wrapped under the same password with PBKDF2")
r = sp.ctl("crypt", "status", LEE, lee_dir)
tap.ok("under algorithms not on the kcmvp list: 0" in r.stdout, "0 messages left under unlisted "
       "algorithms", r.stdout)
imap = dp.imap_login(LEE, "lee long password")
lee_got = bodies(imap)
imap.logout()
tap.ok(lee_got == lee_want and len(lee_got) == 5, "every message reads the same after the migration")
dp.stop()
tap.done()
