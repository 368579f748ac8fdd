#!/usr/bin/env python3
"""mailfort_crypt with Dovecot's quota plugin: usage counts plaintext sizes.

Quota "count" (virtual sizes) and "maildir" (maildirsize, physical sizes
from the file names) must see the same numbers as for plaintext mail, not
the slightly larger ciphertext, and a message over the limit is refused.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402

USER = "hank@example.test"


def message(i, size, pad=0):
    body = ("x" * 70 + "\r\n") * (size // 72 + 1)
    return ("From: a@example.test\r\nTo: %s\r\nSubject: quota %d\r\nX-Pad: %s\r\n\r\n%s"
            % (USER, i, "p" * pad, body)).encode()


SIZES = (1000, 70000, 200000)


def measure(msgs, backend):
    """What the backend counts: virtual sizes (count) or stored LF sizes (maildir)."""
    if backend == "count":
        return sum(len(m) for m in msgs)
    return sum(len(m.replace(b"\r\n", b"\n")) for m in msgs)


def workload(backend):
    """Messages whose plaintext total ends 100 bytes below a KiB boundary, so
    that counting the ciphertext (>= 450 bytes more) would show."""
    base = [message(i, s, 1) for i, s in enumerate(SIZES)]
    pad = 1 + (1024 - 100 - measure(base, backend) % 1024) % 1024
    return [message(0, SIZES[0], pad)] + base[1:]


def usage_kb(imap):
    typ, data = imap.getquotaroot("INBOX")
    flat = b" ".join(d if isinstance(d, bytes) else b"" for d in data[1]) if len(data) > 1 else b""
    m = re.search(rb"STORAGE (\d+) (\d+)", flat)
    return (int(m.group(1)), int(m.group(2))) if m else None


site = Site("crypt_quota")
for backend, extra_settings in (("count", {"quota_vsizes": "yes"}), ("maildir", {})):
    settings = {"quota": "%s:User quota" % backend, "quota_rule": "*:storage=1M"}
    settings.update(extra_settings)
    dc = Dovecot("cq" + backend[0], site=site, plugins=["quota", "mailfort_crypt"],
                 imap_plugins=["imap_quota"], users={USER: "pw"}, plugin_settings=settings)
    dc.own_keys(site)
    dc.start()
    imap = dc.imap_login(USER, "pw")
    msgs = workload(backend)
    total = sum(len(m) for m in msgs)
    for msg in msgs:
        typ, _ = imap.append("INBOX", None, None, msg)
    imap.select("INBOX")
    typ, data = imap.fetch("1:*", "(RFC822.SIZE)")
    sizes = sum(int(x) for x in re.findall(rb"RFC822\.SIZE (\d+)", b" ".join(data)))
    tap.eq(sizes, total, "%s: RFC822.SIZE adds up to the plaintext" % backend)
    want = measure(msgs, backend)
    assert want % 1024 == 1024 - 100
    got = usage_kb(imap)
    tap.ok(got is not None and got[0] == (want + 1023) // 1024,
           "%s: quota usage is the plaintext size (%s KiB, want %d)"
           % (backend, got, (want + 1023) // 1024), got)
    try:
        typ, data = imap.append("INBOX", None, None, message(9, 900000))
    except Exception as e:  # noqa: BLE001 - imaplib raises on NO
        typ, data = "NO", str(e)
    tap.ok(typ == "NO" and "quota" in str(data).lower(), "%s: a message over quota is refused"
           % backend, (typ, data))
    imap.logout()
    dc.stop()
tap.done()
