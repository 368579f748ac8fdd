#!/usr/bin/env python3
"""mailfort-milter behind a real Postfix (smtpd_milters) delivering to Dovecot.

A sender talks SMTP to Postfix on loopback; Postfix asks the milter; what is
accepted is delivered over LMTP into a Maildir.  Checks what people see:
ham arrives with X-Spam-Flag: NO and an X-Spam-Status; spam above the hold
threshold waits in Postfix's hold queue; spam above the reject threshold is
refused with 550 5.7.1; an oversized attachment is refused with 552 5.3.4
and a reply naming file, size and limit; a blocked attachment and a
program renamed .pdf arrive replaced by a text part; then mailfort-auditd
files a verdict row for every message, under Postfix's own queue id.
A batch of 96 messages over 8 parallel sessions with 4 SIGHUP reloads in
the middle shows the sessions are kept apart and nothing is dropped.
"""
import base64
import glob
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, tap  # noqa: E402
from milterlib import Milter, train_corpus  # noqa: E402
from stack import Dovecot, Postfix  # noqa: E402

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xffThis program cannot be run in DOS mode."


def message(subject, body, sender="alice@gov.example", attachments=(), extra=""):
    dom = sender.split("@")[1]
    head = ("From: %s\r\nTo: bob@example.test\r\nSubject: %s\r\n"
            "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@%s>\r\n%s"
            % (sender, subject, subject.replace(" ", "."), dom, extra))
    if not attachments:
        return head + "\r\n" + body + "\r\n"
    out = head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
    out += "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % body
    for name, ctype, data in attachments:
        enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
        out += ("--B\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; "
                "filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s"
                % (ctype, name, name, enc))
    return out + "--B--\r\n"


def send(pf, sender, msg):
    """Returns (code, text) of the final reply; 250 when accepted."""
    try:
        with pf.smtp() as s:
            s.sendmail(sender, ["bob@example.test"], msg.encode())
        return 250, ""
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    except smtplib.SMTPResponseException as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")


def delivered(dc, subject, timeout=30):
    """The delivered message with this Subject, or None."""
    end = time.time() + timeout
    while time.time() < end:
        for f in glob.glob(os.path.join(dc.home("bob"), "Maildir", "*", "*")):
            if not os.path.isfile(f):
                continue
            with open(f, errors="replace") as fh:
                text = fh.read()
            if ("Subject: %s\n" % subject) in text:
                return text
        time.sleep(0.2)
    return None


site = Site("milter-pf", extra={"milter": {
    "min_training": 10, "hold_threshold": "7.0", "reject_threshold": "12.0",
    "max_attachment_size": "100k"}})
maildir, mbox = train_corpus(TMP)
r = site.ctl("spam", "train", "--spam", maildir, "--ham", mbox)
tap.ok(r.returncode == 0, "classifier trained", r.stderr)
m = Milter(site).start()
dc = Dovecot("milter-pf", users={"bob": "secret"}).start()
pf = Postfix("milter-pf", dovecot=dc, milter="inet:127.0.0.1:%d" % m.port).start()

# ham
code, _ = send(pf, "alice@gov.example",
               message("committee agenda", "draft minutes for the budget review meeting"))
text = delivered(dc, "committee agenda")
tap.ok(code == 250 and text is not None, "ham is accepted and delivered", pf.maillog_text()[-2000:])
tap.ok(text is not None and "X-Spam-Flag: NO" in text and
       re.search(r"X-Spam-Status: No, score=-?[0-9.]+ required=5\.0", text or ""),
       "ham carries X-Spam-Flag: NO and a SpamAssassin-style X-Spam-Status", text)

# spam: held
code, _ = send(pf, "promo@deals.example",
               message("jackpot winner", "casino lottery bonus prize viagra offer",
                       sender="promo@deals.example"))
time.sleep(1)
held = [q for sub, q in pf.queue_ids() if sub == "hold"]
tap.ok(code == 250 and len(held) == 1, "spam above hold_threshold waits in the hold queue",
       (code, pf.queue_ids()))

# spam: rejected
code, reply = send(pf, "promo@deals.example",
                   message("jackpot prize", "casino lottery bonus prize viagra offer",
                           sender="promo@deals.example",
                           extra="Authentication-Results: mx.example.test; spf=fail "
                                 "smtp.mailfrom=deals.example; dmarc=fail\r\n"))
tap.ok(code == 550 and reply.startswith("5.7.1") and "spam" in reply,
       "spam above reject_threshold is refused with 550 5.7.1", (code, reply))

# oversized attachment
code, reply = send(pf, "alice@gov.example",
                   message("big scan", "Scan attached.",
                           attachments=[("scan.tif", "image/tiff", b"\x00" * 150000)]))
tap.ok(code == 552 and reply.startswith("5.3.4") and "scan.tif" in reply and "146.5 KB" in reply
       and "100.0 KB" in reply and "link" in reply,
       "an oversized attachment is refused with 552 5.3.4 naming file, size, limit, remedy",
       (code, reply))

# blocked attachment: stripped and replaced
code, _ = send(pf, "alice@gov.example",
               message("tool update", "Here is the tool.",
                       attachments=[("update.exe", "application/octet-stream", EXE)]))
text = delivered(dc, "tool update")
enc = base64.encodebytes(EXE).decode().split("\n")[0]
tap.ok(code == 250 and text is not None and "update.exe" in text and "was removed" in text
       and enc not in text, "a blocked .exe is delivered as a text part naming it", text)

# renamed program
code, _ = send(pf, "alice@gov.example",
               message("invoice copy", "Invoice attached.",
                       attachments=[("invoice.pdf", "application/pdf", EXE)]))
text = delivered(dc, "invoice copy")
tap.ok(code == 250 and text is not None and "was removed" in text and "windows-executable" in text
       and enc not in text, "a program renamed .pdf is caught and replaced", text)

# many sessions at once, with reloads in the middle: nothing lost, nothing mixed up
import threading  # noqa: E402

errors = []


def sender(k):
    try:
        with pf.smtp() as s:
            for i in range(12):
                s.sendmail("alice@gov.example", ["bob@example.test"],
                           message("batch %d %d" % (k, i), "budget meeting minutes %d %d" % (k, i))
                           .encode())
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(repr(e))


threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
reloads = 0
for _ in range(4):
    time.sleep(0.3)
    reloads += 1 if m.reload() else 0
for t in threads:
    t.join()


def batch_delivered():
    """The batch messages in bob's Maildir (what his client will list)."""
    return [f for f in glob.glob(os.path.join(dc.home("bob"), "Maildir", "*", "*"))
            if os.path.isfile(f) and "Subject: batch" in open(f, errors="replace").read()]


# Counted in the mailbox, not in Postfix's log: an earlier message's
# "status=sent" line may still be on its way when the batch starts.
end = time.time() + 60
while time.time() < end and len(batch_delivered()) < 96:
    time.sleep(0.2)
time.sleep(0.5)  # a 97th (a duplicate) would arrive now
batch = batch_delivered()
subjects = sorted(open(f, errors="replace").read().split("Subject: ", 1)[1].split("\n", 1)[0]
                  for f in batch)
tap.ok(not errors and len(batch) == 96 and len(set(subjects)) == 96 and reloads == 4,
       "96 messages over 8 parallel sessions, 4 reloads meanwhile: all accepted and delivered",
       (errors, reloads, len(batch), len(set(subjects))))
tap.ok(len(batch) == 96 and all("X-Spam-Status: " in open(f, errors="replace").read()
                                for f in batch),
       "each of them carries its X-Spam headers", len(batch))
tap.ok(m.proc.poll() is None, "the milter is still running")

# verdicts
pf.stop()
m.stop()
try:
    from auditlib import Auditd  # noqa: E402
    r = Auditd(site).once(check=False)
    rows = site.sql("SELECT queue_id, action FROM audit.mail_verdicts ORDER BY verdict_time")
    if not tap.eq([a for _q, a in rows][:6], ["accept", "hold", "reject", "reject", "strip", "strip"],
                  "one verdict row per message, in order"):
        tap.diag(r.stdout + r.stderr)
    tap.eq(len(rows), 6 + 96, "and one for each message of the batch")
    tap.eq(len(set(q for q, _a in rows if q)), 6 + 96, "each under its own queue id")
    qids = [q for q, a in rows if a in ("accept", "hold", "strip")]
    log = pf.maillog_text()
    tap.ok(qids and all(q and q in log for q in qids),
           "accepted messages' verdicts carry Postfix's queue id", (qids, log[-1500:]))
except ImportError as e:
    tap.ok(False, "mailfort-auditd's test harness is available", e)
tap.done()
