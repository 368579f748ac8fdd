#!/usr/bin/env python3
"""MIME that mail readers read differently, sent through a real Postfix.

Postfix runs as Debian ships it: smtpd and cleanup chrooted in the queue
directory.  The milter listens on a unix socket inside that directory
(group postfix, mode 0660) and main.cf names it by the relative path
unix:mailfort-milter/milter.sock, as examples/postfix/main.cf does.

For each class of ambiguity (two Content-Type fields, two
Content-Transfer-Encoding fields, two Content-Disposition fields, RFC 2231
parameters that disagree, a multipart without its closing boundary, a part
after the closing boundary) the sender is refused with 554 5.6.0 and a
sentence naming what was ambiguous; nothing reaches the mailbox (checked
over IMAP); each refusal leaves a verdict event naming the ambiguity.
Ordinary MIME with an attachment is delivered; a header cut short by a
line that is not a field is ended there by Postfix, so Dovecot shows the
one text part the milter read.  With
ambiguous_mime_action = hold (after a reload) the message is accepted into
Postfix's hold queue, not the mailbox, and the verdict says why.
"""
import base64
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from milterlib import Milter, spool_events  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402

EXE = base64.b64encode(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xffThis program cannot "
                       b"be run in DOS mode.").decode()


def message(subject, body_headers, body):
    return ("From: alice@gov.example\r\nTo: bob@example.test\r\nSubject: %s\r\n"
            "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@gov.example>\r\n"
            "MIME-Version: 1.0\r\n%s\r\n%s" % (subject, subject.replace(" ", "."), body_headers,
                                               body))


MIXED = "Content-Type: multipart/mixed; boundary=\"B\"\r\n"
TEXT = "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nInvoice attached.\r\n"

CASES = [
    ("duplicate content type", "two Content-Type fields",
     message("duplicate content type", MIXED,
             TEXT + "--B\r\nContent-Type: text/plain\r\nContent-Type: application/octet-stream; "
             "name=\"invoice.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + EXE +
             "\r\n--B--\r\n")),
    ("duplicate transfer encoding", "two Content-Transfer-Encoding fields",
     message("duplicate transfer encoding", MIXED,
             TEXT + "--B\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
             "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
             EXE + "\r\n--B--\r\n")),
    ("duplicate disposition", "two Content-Disposition fields",
     message("duplicate disposition", MIXED,
             TEXT + "--B\r\nContent-Type: application/octet-stream\r\n"
             "Content-Disposition: inline\r\n"
             "content-disposition: attachment;\r\n filename=\"invoice.exe\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" + EXE + "\r\n--B--\r\n")),
    ("rfc2231 conflict", "two different filename parameters",
     message("rfc2231 conflict", MIXED,
             TEXT + "--B\r\nContent-Type: application/pdf\r\n"
             "Content-Disposition: attachment; filename=\"invoice.pdf\";\r\n"
             " filename*=UTF-8''invoice.exe\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" + EXE + "\r\n--B--\r\n")),
    ("rfc2231 sections", "section filename*1 appears twice",
     message("rfc2231 sections", MIXED,
             TEXT + "--B\r\nContent-Type: application/pdf\r\n"
             "Content-Disposition: attachment; filename*0=\"invoice\"; filename*1=\".pdf\";\r\n"
             " filename*1=\".exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + EXE +
             "\r\n--B--\r\n")),
    ("unterminated boundary", "without its closing boundary",
     message("unterminated boundary", MIXED,
             TEXT + "--B\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" + EXE + "\r\n")),
    ("epilogue part", "after the closing boundary",
     message("epilogue part", MIXED,
             TEXT + "--B--\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n" + EXE + "\r\n")),
]


def send(pf, msg):
    """(code, text) of the final reply; 250 when accepted."""
    try:
        with pf.smtp() as s:
            s.sendmail("alice@gov.example", ["bob@example.test"], msg.encode())
        return 250, ""
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")


def imap_subjects(dc):
    """Subjects of every message in bob's INBOX, read over IMAP."""
    m = dc.imap_login("bob", "secret")
    try:
        typ, data = m.select("INBOX")
        out = []
        if typ != "OK" or data[0] in (b"0", None):
            return out
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ == "OK":
            for item in data:
                if isinstance(item, tuple):
                    out.append(item[1].decode(errors="replace").strip()
                               .replace("Subject: ", ""))
        return out
    finally:
        m.logout()


def verdicts(site):
    return spool_events(site.spool, "verdict")


site = Site("milter-amb", extra={"milter": {"spam": "no"}})
dc = Dovecot("milter-amb", users={"bob": "secret"}).start()
pf = Postfix("milter-amb", dovecot=dc, milter="unix:mailfort-milter/milter.sock", chroot=True)
sockdir = os.path.join(pf.queue_dir(), "mailfort-milter")
os.makedirs(sockdir)
os.chown(sockdir, 0, __import__("grp").getgrnam("postfix").gr_gid)
os.chmod(sockdir, 0o750)
m = Milter(site, name="milter-amb", unix=True)
m.path = os.path.join(sockdir, "milter.sock")
m.socket = "unix:" + m.path
site.set("milter", "socket", m.socket)
m.start()
m.wait_log("listening on")
st = os.stat(m.path)
tap.ok(st.st_mode & 0o777 == 0o660 and st.st_gid == __import__("grp").getgrnam("postfix").gr_gid,
       "the milter's socket is mode 0660, group postfix", (oct(st.st_mode), st.st_gid))
pf.start()

# ordinary mail with an attachment: delivered (also proves the chrooted smtpd reaches the socket)
code, reply = send(pf, message("ordinary invoice", MIXED,
                               TEXT + "--B\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n"
                               "Content-Disposition: attachment; filename=\"invoice.pdf\";\r\n"
                               " filename*=UTF-8''invoice.pdf\r\n"
                               "Content-Transfer-Encoding: base64\r\n\r\n" +
                               base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode() + "\r\n--B--\r\n"))
end = time.time() + 30
while time.time() < end and "ordinary invoice" not in imap_subjects(dc):
    time.sleep(0.3)
tap.ok(code == 250 and "ordinary invoice" in imap_subjects(dc),
       "ordinary MIME reaches the mailbox through chrooted smtpd and the unix socket",
       (code, reply, pf.maillog_text()[-1500:]))

# A top-level header ended by a line that is not a field: Postfix ends the
# header there and adds the blank line itself, so the Content-Type after it
# is body text for the milter and for Dovecot alike.
code, reply = send(pf, message("header cut short", "this line is not a header\r\n" + MIXED,
                               TEXT + "--B\r\nContent-Type: application/octet-stream; "
                               "name=\"invoice.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                               EXE + "\r\n--B--\r\n"))
end = time.time() + 30
while time.time() < end and "header cut short" not in imap_subjects(dc):
    time.sleep(0.3)
imap = dc.imap_login("bob", "secret")
imap.select("INBOX")
typ, data = imap.search(None, "SUBJECT", "\"header cut short\"")
bs = imap.fetch(data[0].split()[-1], "(BODYSTRUCTURE)")[1][0] if data and data[0] else b""
imap.logout()
tap.ok(code == 250 and b'("text" "plain"' in bs and b"application" not in bs,
       "a header cut short by a line that is not a field: Dovecot shows one text part, "
       "as the milter read it", (code, reply, bs))

for subject, what, msg in CASES:
    code, reply = send(pf, msg)
    tap.ok(code == 554 and reply.startswith("5.6.0") and what in reply and
           "more than one way" in reply and "ordinary mail program" in reply,
           "%s: refused with 554 5.6.0 naming it (%s)" % (subject, what), (code, reply))

# wait until every refusal has its verdict, then check the mailbox over IMAP
end = time.time() + 20
while time.time() < end and len([e for e in verdicts(site) if e.get("action") == "reject"]) < len(CASES):
    time.sleep(0.2)
subjects = imap_subjects(dc)
tap.ok(not any(s in subjects for s, _w, _m in CASES),
       "none of the ambiguous messages is in the mailbox (IMAP)", subjects)
events = verdicts(site)
for subject, what, _msg in CASES:
    ev = [e for e in events if subject.replace(" ", ".") in (e.get("message_id") or "")]
    tap.ok(len(ev) == 1 and ev[0].get("action") == "reject" and what in (ev[0].get("ambiguous") or "")
           and ev[0].get("reply") == "554 5.6.0",
           "%s: the verdict event says reject and names the ambiguity" % subject, ev)

# hold mode
site.set("milter", "ambiguous_mime_action", "hold")
tap.ok(m.reload(), "ambiguous_mime_action = hold is loaded by a reload")
code, reply = send(pf, CASES[0][2].replace("duplicate content type", "held duplicate")
                   .replace("duplicate.content.type", "held.duplicate"))
time.sleep(1)
held = [q for sub, q in pf.queue_ids() if sub == "hold"]
tap.ok(code == 250 and len(held) == 1, "in hold mode the message is accepted into the hold queue",
       (code, reply, pf.queue_ids()))
time.sleep(1)
tap.ok("held duplicate" not in imap_subjects(dc), "and does not reach the mailbox")
ev = [e for e in verdicts(site) if "held.duplicate" in (e.get("message_id") or "")]
tap.ok(len(ev) == 1 and ev[0].get("action") == "hold" and
       "two Content-Type fields" in (ev[0].get("ambiguous") or "") and
       "ambiguous MIME" in (ev[0].get("reason") or ""),
       "its verdict event says hold and names the ambiguity", ev)
pf.stop()
m.stop()
tap.done()
