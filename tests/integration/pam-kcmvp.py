#!/usr/bin/env python3
"""App passwords and recovery codes under the kcmvp profile, through real PAM.

Under [crypto] profile = kcmvp new app passwords and recovery codes are
stored as HMAC-SHA256(hash.key, normal form) (checked here against
Python's hmac, an independent implementation), those made before the
switch (keyed BLAKE2b) keep working, and pam_mailfort accepts both kinds
at login; a recovery code still works once only.
"""
import hashlib
import hmac
import os
import re
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup  # noqa: E402

PASSWORDS = {"erin": "pw-erin", "gus": "pw-gus"}
site = Site("pam-kcmvp")
pam = PamSetup(site, passwords=PASSWORDS)
hash_key = open(os.path.join(site.keys, "hash.key"), "rb").read()


def stored(label):
    return bytes.fromhex(site.scalar("SELECT encode(hash, 'hex') FROM mailfort.app_passwords "
                                     "WHERE label = :'l'", params={"l": label}))


def norm(code):
    return code.replace("-", "").lower().encode()


def add(user, label):
    r = site.ctl("apppass", "add", user, "--label", label)
    m = re.search(r"\b([a-z2-9]{4}(?:-[a-z2-9]{4}){4})\b", r.stdout)
    tap.ok(r.returncode == 0 and m, "apppass add %s" % label, r.stdout + r.stderr)
    return m.group(1) if m else "xxxx"


old = add("erin", "laptop")
tap.eq(stored("laptop"), hashlib.blake2b(norm(old), key=hash_key, digest_size=32).digest(),
       "default profile: the app password is stored as keyed BLAKE2b")
site.set("crypto", "profile", "kcmvp")
new = add("erin", "phone")
tap.eq(stored("phone"), hmac.new(hash_key, norm(new), hashlib.sha256).digest(),
       "kcmvp profile: the app password is stored as HMAC-SHA256(hash.key, normal form)")
for what, ap in (("made under kcmvp", new), ("made before the switch", old)):
    ok, msg = pam.auth("imap", "erin", ap)
    tap.ok(ok, "an app password %s is accepted" % what, msg)
ok, msg = pam.auth("imap", "gus", new)
tap.ok(not ok, "erin's app password does not log gus in", msg)
ok, msg = pam.auth("imap", "erin", new[:-1] + ("a" if new[-1] != "a" else "b"))
tap.ok(not ok, "a changed app password is refused", msg)

secret = pam.enroll("gus")
r = site.ctl("totp", "recovery", "gus")
codes = re.findall(r"^\s+([a-z]{4}-[a-z]{4}-[a-z]{4})$", r.stdout, re.M)
tap.eq(len(codes), 10, "totp recovery issues 10 codes under kcmvp")
rows = {bytes.fromhex(h[0]) for h in site.sql(
    "SELECT encode(r.hash, 'hex') FROM mailfort.recovery_codes r JOIN mailfort.accounts a "
    "ON a.id = r.account_id WHERE a.username = 'gus'")}
tap.eq(rows, {hmac.new(hash_key, norm(c), hashlib.sha256).digest() for c in codes},
       "each is stored as HMAC-SHA256 of its normal form")
ok, msg = pam.auth("imap", "gus", PASSWORDS["gus"] + codes[0])
tap.ok(ok, "a recovery code logs in", msg)
ok, msg = pam.auth("imap", "gus", PASSWORDS["gus"] + codes[0])
tap.ok(not ok, "but only once", msg)
tap.done()
