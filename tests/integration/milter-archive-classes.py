#!/usr/bin/env python3
"""Attachment tricks through a real Postfix -> mailfort-milter -> Dovecot LMTP.

One message per way of hiding a program that got past the milter before
(blocked_action = reject here, so the sender learns which file and why):

  - a ZIP behind leading bytes (a PDF header and 4 KB of noise in front);
  - an archive inside a ZIP entry compressed with bzip2, and one inside an
    LZMA entry;
  - a gzip stream behind 4 KB of noise inside an LZMA ZIP entry (7z finds
    gzip at any offset of a file);
  - a script compressed on its own (report.js.gz);
  - a uuencoded "begin 644 invoice.exe" in a plain text body;

each refused with 552 5.3.4 and a reply naming the file inside and why.
An encrypted ZIP from outside is uninspectable: accepted by Postfix into
its hold queue, and the verdict event says it is held because the archive
is encrypted.  A harmless message and a harmless ZIP sent alongside are
delivered; over IMAP the mailbox holds exactly those two and no reader
(Python's email package, bsdtar, 7z, unzip on every attachment) gets a
program or script out of it.
"""
import base64
import binascii
import gzip
import io
import os
import random
import smtplib
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/oracle"))
from mailfort import TMP, Site, tap  # noqa: E402
from milterlib import Milter, spool_events  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402
import readers  # noqa: E402

EXE = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8" + b"\x00" * 40 +
       b"\x80\x00\x00\x00This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 64)
JS = b"var s = new ActiveXObject('WScript.Shell'); s.Run('calc');\n"
SH = b"#!/bin/sh\necho pwned\n"
NOISE = bytes(random.Random(12).getrandbits(8) for _ in range(4096))


def zip_of(entries, method=zipfile.ZIP_DEFLATED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return out.getvalue()


def encrypted_zip(name, data):
    with tempfile.TemporaryDirectory(dir=TMP) as d:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        subprocess.run(["zip", "-q", "-P", "s3cret", "out.zip", name], cwd=d, check=True)
        with open(os.path.join(d, "out.zip"), "rb") as f:
            return f.read()


def message(subject, text, attachments=()):
    head = ("From: carol@outside.example\r\nTo: bob@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <%s@outside.example>\r\n"
            % (subject, subject.replace(" ", ".")))
    if not attachments:
        return (head + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text).encode()
    out = head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
    out += "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % text
    for name, data in attachments:
        enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
        out += ("--B\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n"
                "Content-Disposition: attachment; filename=\"%s\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s" % (name, name, enc))
    return (out + "--B--\r\n").encode()


def send(msg):
    """(code, reply text) of the answer to DATA; 250 when accepted."""
    try:
        with pf.smtp() as s:
            s.sendmail("carol@outside.example", ["bob@example.test"], msg)
        return 250, ""
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")


site = Site("milter-cls", extra={"milter": {"spam": "no", "blocked_action": "reject"}})
m = Milter(site).start()
dc = Dovecot("milter-cls", users={"bob": "secret"}).start()
pf = Postfix("milter-cls", dovecot=dc, milter=m.postfix_socket()).start()

uu = "".join(binascii.b2a_uu(EXE[i:i + 45], backtick=True).decode().replace("\n", "\r\n")
             for i in range(0, len(EXE), 45))
uu_body = ("Hello Bob,\r\n\r\nthe invoice program is below.\r\n\r\nbegin 644 invoice.exe\r\n" +
           uu + "`\r\nend\r\n\r\nRegards, Carol\r\n")

cases = [
    ("zip behind leading bytes", "scan.pdf",
     b"%PDF-1.4\n" + NOISE + zip_of([("readme.txt", b"hello\n"), ("invoice.exe", EXE)]),
     "invoice.exe", "files of type .exe are not accepted"),
    ("archive in a bzip2 entry", "files.zip",
     zip_of([("inner.zip", zip_of([("update.js", JS)]))], zipfile.ZIP_BZIP2),
     "inner.zip/update.js", "files of type .js are not accepted"),
    ("archive in an lzma entry", "payroll.zip",
     zip_of([("inner.zip", zip_of([("tool.exe", EXE)]))], zipfile.ZIP_LZMA),
     "inner.zip/tool.exe", "files of type .exe are not accepted"),
    ("gzip behind noise in an lzma entry", "install.zip",
     zip_of([("install.sh.gz", NOISE + gzip.compress(SH))], zipfile.ZIP_LZMA),
     "install.sh.gz/install.sh", "shell-script"),
    ("script compressed alone", "report.js.gz", gzip.compress(JS), "report.js",
     "files of type .js are not accepted"),
]

for subject, name, data, inner, why in cases:
    code, reply = send(message(subject, "Files attached.", [(name, data)]))
    tap.ok(code == 552 and reply.startswith("5.3.4") and ("%s contains %s" % (name, inner)) in reply
           and why in reply,
           "%s: refused with 552 5.3.4 naming %s, %s and why" % (subject, name, inner),
           (code, reply))

code, reply = send(message("uuencoded program", uu_body))
tap.ok(code == 552 and reply.startswith("5.3.4") and "invoice.exe" in reply and
       "files of type .exe are not accepted" in reply,
       "a uuencoded invoice.exe in a text body: refused with 552 5.3.4 naming it", (code, reply))

# an encrypted ZIP from outside: held, with the reason in the verdict event
code, reply = send(message("encrypted contract", "The password is s3cret.",
                           [("contract.zip", encrypted_zip("contract.exe", EXE))]))
end = time.time() + 20
held = []
while time.time() < end and not held:
    held = [q for sub, q in pf.queue_ids() if sub == "hold"]
    time.sleep(0.2)
tap.ok(code == 250 and len(held) == 1,
       "an encrypted ZIP from outside is accepted into Postfix's hold queue",
       (code, reply, pf.queue_ids()))
ev = [e for e in spool_events(site.spool, "verdict") if held and e.get("queue_id") == held[0]]
att = ev[0].get("attachments", [{}])[0] if len(ev) == 1 else {}
tap.ok(len(ev) == 1 and ev[0].get("action") == "hold" and ev[0].get("direction") == "inbound"
       and "contract.zip cannot be inspected" in (ev[0].get("reason") or "")
       and "encrypted" in (ev[0].get("reason") or "")
       and att.get("action") == "hold" and "encrypted" in (att.get("uninspectable") or ""),
       "its verdict event says held, inbound, contract.zip is encrypted", ev)

# harmless mail still arrives, and nothing else does
code1, _ = send(message("minutes", "Minutes of the budget committee."))
code2, _ = send(message("minutes zipped", "Zipped minutes.",
                        [("minutes.zip", zip_of([("minutes.txt", b"budget\n" * 50)]))]))
tap.ok(code1 == 250 and code2 == 250, "a plain message and a harmless ZIP are accepted",
       (code1, code2))

imap = dc.imap_login("bob", "secret")
subjects, bad = [], []
end = time.time() + 30
while time.time() < end:
    imap.select("INBOX")
    _, data = imap.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    if len(uids) >= 2:
        break
    time.sleep(0.3)
time.sleep(1)  # anything wrongly let through would be here by now
imap.select("INBOX")
_, data = imap.uid("SEARCH", None, "ALL")
for uid in data[0].split():
    _, msg = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    raw = msg[0][1]
    subjects.append(raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode())
    for fname, content in readers.files_from_email(raw):
        for path, c in [(fname, content)] + [(p, c2) for _t, p, c2 in
                                             readers.unpack(fname, content)]:
            if readers.dangerous(path, c):
                bad.append((subjects[-1], path))
imap.logout()
tap.ok(sorted(subjects) == ["minutes", "minutes zipped"],
       "over IMAP the mailbox holds the two harmless messages and nothing else", subjects)
tap.ok(subjects and not bad,
       "no reader gets a program or script out of anything in the mailbox", bad)
pf.stop()
dc.stop()
m.stop()
tap.done()
