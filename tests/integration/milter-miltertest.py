#!/usr/bin/env python3
"""mailfort-milter driven by miltertest: every action, reload, faults, verdicts.

Trains the classifier with mailfortctl on generated mail (Maildir + mbox),
runs the real daemon, and sends one message per case through miltertest:
ham tagged, spam flagged / held / rejected 550 5.7.1, an oversized
attachment rejected 552 5.3.4, a blocked and a renamed program stripped, an
encrypted archive held, a MIME bomb rejected, a message over the size limit
refused while it arrives, forged X-Spam headers replaced.  Then SIGHUP
reloads: a broken temp dir gives the default action (tempfail, then accept
when so configured), a dead database keeps the model in memory.  Finally
mailfort-auditd ships the spool and every message has its row in
audit.mail_verdicts.
"""
import base64
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import BUILD, TMP, Site, run, tap  # noqa: E402
from milterlib import Milter, lua_session, spool_events, train_corpus  # noqa: E402

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xffThis program cannot be run in DOS mode."


def headers(subject, extra=(), sender="Alice <alice@gov.example>"):
    h = [("From", sender), ("To", "user@example.test"),
         ("Subject", subject), ("Date", "Thu, 26 Nov 2026 10:00:00 +0000"),
         ("Message-ID", "<%s@%s" % (subject.replace(" ", "."), sender.split("@")[1]))]
    return h + list(extra)


def multipart(text, attachments):
    """headers to add, body: a text part plus (name, ctype, bytes) attachments."""
    body = "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n" % text
    for name, ctype, data in attachments:
        enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
        body += ("--B\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment;"
                 " filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s"
                 % (ctype, name, name, enc))
    body += "--B--\r\n"
    return [("MIME-Version", "1.0"), ("Content-Type", "multipart/mixed; boundary=\"B\"")], body


def zip_stored(entries):
    """A ZIP with stored entries: [(name, bytes, encrypted)]."""
    import struct
    out, cd = b"", b""
    for name, data, enc in entries:
        off = len(out)
        nb = name.encode()
        flags = 1 if enc else 0
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, flags, 0, 0, 0, 0, len(data), len(data),
                           len(nb), 0) + nb + data
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, flags, 0, 0, 0, 0, len(data),
                          len(data), len(nb), 0, 0, 0, 0, 0, off) + nb
    return out + cd + struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(entries), len(entries),
                                  len(cd), len(out), 0)


site = Site("milter-mt", extra={"milter": {
    "min_training": 10, "spam_threshold": "5.0", "hold_threshold": "7.0",
    "reject_threshold": "12.0", "max_attachment_size": "100k", "max_message_size": "2M",
    "max_mime_parts": 50, "model_refresh": "1h"}})
maildir, mbox = train_corpus(TMP)
r = site.ctl("spam", "train", "--spam", maildir, "--ham", mbox)
tap.eq((r.returncode, r.stdout.splitlines()[0] if r.stdout else r.stderr),
       (0, "trained 30 spam and 30 ham messages"), "mailfortctl spam train reads a Maildir and an mbox")
tap.ok("model fitted to 30 spam and 30 ham examples" in r.stdout,
       "the model is fitted to every example", r.stdout)
r = site.ctl("spam", "train", "--spam", maildir)
tap.ok(r.returncode == 0 and "model fitted to 30 spam and 30 ham examples" in r.stdout,
       "training the same messages again keeps one example of each", r.stdout + r.stderr)
r = site.ctl("spam", "train", "--ham", os.path.join(maildir, "new"))
tap.ok(r.returncode == 0 and "model fitted to 15 spam and 45 ham examples" in r.stdout,
       "training a message under the other label corrects its label", r.stdout + r.stderr)
r = site.ctl("spam", "train", "--spam", os.path.join(maildir, "new"))
tap.ok(r.returncode == 0 and "model fitted to 30 spam and 30 ham examples" in r.stdout,
       "... and back", r.stdout + r.stderr)
r = site.ctl("spam", "forget", os.path.join(maildir, "new"))
tap.ok(r.returncode == 0 and "forgot 15 of 15 messages" in r.stdout and
       "model fitted to 15 spam and 30 ham examples" in r.stdout,
       "spam forget removes trained messages and fits the rest", r.stdout + r.stderr)
r = site.ctl("spam", "forget", os.path.join(maildir, "new"))
tap.ok(r.returncode == 0 and "forgot 0 of 15 messages" in r.stdout,
       "forgetting what is not trained changes nothing", r.stdout + r.stderr)
r = site.ctl("spam", "train", "--spam", os.path.join(maildir, "new"))
tap.ok(r.returncode == 0 and "model fitted to 30 spam and 30 ham examples" in r.stdout,
       "forgotten messages can be trained again", r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.spam_examples"), "60",
       "one stored example per distinct message")
tap.ok(site.scalar("SELECT bias IS NOT NULL FROM mailfort.spam_totals") == "t" and
       site.scalar("SELECT count(*) FROM mailfort.spam_tokens WHERE weight <> 0") != "0",
       "the stored model has a bias and weights")
r = site.ctl("spam", "stats")
tap.ok(r.returncode == 0 and "spam messages trained:  30" in r.stdout and
       "logistic regression" in r.stdout, "spam stats shows the totals and the model",
       r.stdout + r.stderr)
tap.ok(site.scalar("SELECT count(*) FROM mailfort.spam_tokens WHERE octet_length(token) = 8")
       != "0", "tokens are stored as 8-byte keyed hashes")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.spam_tokens WHERE token = "
                   "convert_to('meeting', 'UTF8')"), "0", "no word is stored in clear")

for cmd in ("classify", "tokens"):
    r = site.ctl("spam", cmd, os.path.join(TMP, "no-such-mail"))
    tap.ok(r.returncode == 1 and "no-such-mail: No such file or directory" in r.stderr,
           "spam %s on a missing path fails and names it" % cmd, (r.returncode, r.stderr))

bad = os.path.join(TMP, "bad.conf")
with open(bad, "w") as f:
    f.write("[milter]\nhold_threshold = soon\n")
r = run([os.path.join(BUILD, "milter", "mailfort-milter"), "--check-config", "-c", bad])
tap.ok(r.returncode == 1 and "hold_threshold" in r.stderr, "--check-config names a bad key",
       r.stderr)

m = Milter(site).start()
tap.ok(m.wait_log("spam model loaded: "), "the milter loads the model at start", m.log_text())
seen = []  # (queue id, expected action)

# 1. ham: tagged, not flagged, forged headers from outside replaced
res = lua_session(m, headers("committee agenda", [("X-Spam-Flag", "YES")]),
                  "draft minutes for the budget review meeting\r\n", queue_id="HAM1")
tap.ok(res.get("eom") == "c" and res.get("flag") == "NO" and "X-Spam-Status" in res["adds"],
       "ham passes with X-Spam-Flag: NO and X-Spam-Status", res)
tap.ok("X-Spam-Flag" in res["changes"], "a forged X-Spam-Flag from outside is removed", res)
seen.append(("HAM1", "accept"))

# 2. spam: flagged and held.  Bayes alone gives about +9 here -> hold from 7
res = lua_session(m, headers("jackpot winner", sender="Promo <promo@deals.example>"), "casino lottery bonus prize viagra offer\r\n",
                  queue_id="SPAM1")
tap.ok(res.get("flag") == "YES" and res["quarantine"] and res.get("eom") == "c",
       "spam is flagged and held (smfi_quarantine) above hold_threshold", res)
seen.append(("SPAM1", "hold"))

# 3. spam with failing authentication: over reject_threshold
ev_text = ("message refused as spam (score %s, limit 12.0); if this is wrong, contact the "
           "recipient by another way")
res = lua_session(m, headers("jackpot winner", [
    ("Authentication-Results", "mx.example.test; spf=fail smtp.mailfrom=x; dmarc=fail")],
    sender="Promo <promo@deals.example>"),
    "casino lottery bonus prize viagra offer\r\n", queue_id="SPAM2")
ev = [e for e in spool_events(site.spool, "verdict") if e.get("queue_id") == "SPAM2"]
score = ev[0]["score"] if ev else None
res2 = lua_session(m, headers("jackpot winner", [
    ("Authentication-Results", "mx.example.test; spf=fail smtp.mailfrom=x; dmarc=fail")],
    sender="Promo <promo@deals.example>"),
    "casino lottery bonus prize viagra offer\r\n", queue_id="SPAM3",
    reply=("550", "5.7.1", ev_text % ("%.1f" % score if score is not None else "?")))
tap.ok(res.get("eom") == "y" and res2["reply_match"],
       "spam over reject_threshold is refused with 550 5.7.1 and the score", (res, res2, ev))
tap.ok(ev and {"SPF_FAIL", "DMARC_FAIL"} <= {x["name"] for x in ev[0]["rules"]},
       "the verdict names the rules that fired", ev)
seen += [("SPAM2", "reject"), ("SPAM3", "reject")]

# 4. oversized attachment: 552 5.3.4 with file name, size and limit
h, b = multipart("Scan attached.", [("scan.tif", "image/tiff", b"\x00" * 150000)])
text = ("attachment scan.tif is 146.5 KB, over the limit of 100.0 KB per attachment; please share "
        "large files by a link or another channel")
res = lua_session(m, headers("scan", h), b, queue_id="BIG1", reply=("552", "5.3.4", text))
tap.ok(res.get("eom") == "y" and res["reply_match"],
       "an oversized attachment is refused with 552 5.3.4 naming file, size and limit", res)
seen.append(("BIG1", "reject"))

# 5. blocked extension: stripped and replaced
h, b = multipart("Tool.", [("update.exe", "application/octet-stream", b"not really")])
res = lua_session(m, headers("tool", h), b, queue_id="EXE1")
tap.ok(res.get("eom") == "c" and res["bodychange"], "a blocked .exe is stripped (new body)", res)
seen.append(("EXE1", "strip"))

# 6. a program renamed .pdf
h, b = multipart("Invoice.", [("invoice.pdf", "application/pdf", EXE)])
res = lua_session(m, headers("invoice", h), b, queue_id="REN1")
ev = [e for e in spool_events(site.spool, "verdict") if e.get("queue_id") == "REN1"]
att = ev[0]["attachments"][0] if ev and ev[0].get("attachments") else {}
tap.ok(res["bodychange"] and att.get("type") == "windows-executable" and att.get("action") == "strip",
       "a program renamed .pdf is caught by its content and stripped", (res, ev))
seen.append(("REN1", "strip"))

# 7. inside a ZIP, and an encrypted ZIP
h, b = multipart("Photos.", [("photos.zip", "application/zip",
                              zip_stored([("a.jpg", b"\xff\xd8\xff\xe0", False),
                                          ("b.jpg", EXE, False)]))])
res = lua_session(m, headers("photos", h), b, queue_id="ZIP1")
tap.ok(res["bodychange"], "a program inside a ZIP is stripped", res)
seen.append(("ZIP1", "strip"))
h, b = multipart("Contract.", [("contract.zip", "application/zip",
                                zip_stored([("contract.docx", b"\x13\x37" * 20, True)]))])
res = lua_session(m, headers("contract", h), b, queue_id="ENC1")
tap.ok(res["quarantine"] and res.get("eom") == "c", "an encrypted archive is held", res)
seen.append(("ENC1", "hold"))

# 8. MIME bomb
body = "".join("--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(200)) + "--B--\r\n"
res = lua_session(m, headers("bomb", [("MIME-Version", "1.0"),
                                      ("Content-Type", "multipart/mixed; boundary=\"B\"")]),
                  body, queue_id="BOMB1",
                  reply=("554", "5.6.0", "message has more than 50 MIME parts"))
tap.ok(res.get("eom") == "y" and res["reply_match"], "a MIME bomb ends in 554 5.6.0 naming the limit",
       res)
seen.append(("BOMB1", "reject"))

# 9. over max_message_size: refused while arriving
res = lua_session(m, headers("huge"), "x" * 76 + "\r\n" * 1 + ("y" * 78 + "\r\n") * 30000,
                  queue_id="HUGE1")
tap.ok(res.get("eom") == "y", "a message over max_message_size is refused with 552", res)
seen.append(("HUGE1", "reject"))

# 9b. large messages go through temp files (spill), attachments decoded to files
site.set("milter", "spill_threshold", "64k")
site.set("milter", "max_attachment_size", "5M")
tap.ok(m.reload(), "SIGHUP reloads the configuration", m.log_text())
h, b = multipart("Big tool.", [("bigtool.exe", "application/octet-stream",
                                EXE + os.urandom(1200000))])
res = lua_session(m, headers("big tool", h), b, queue_id="LARGE1")
tap.ok(res.get("eom") == "c" and res["bodychange"],
       "a 1.6 MB message is scanned from a temp file and its program stripped", res)
seen.append(("LARGE1", "strip"))
h, b = multipart("Big report.", [("report.pdf", "application/pdf",
                                  b"%PDF-1.4\n" + os.urandom(1200000))])
res = lua_session(m, headers("big report", h), b, queue_id="LARGE2")
tap.ok(res.get("eom") == "c" and not res["bodychange"], "a large PDF passes untouched", res)
seen.append(("LARGE2", "accept"))
tap.eq([f for f in os.listdir(TMP) if f.startswith("mailfort-")], [],
       "no temp file is left behind")

# 10. reload with a broken temp dir: internal error -> default action
site.set("milter", "tmp_dir", "/nonexistent/mailfort")
site.set("milter", "spill_threshold", "4k")
tap.ok(m.reload(), "SIGHUP reloads the configuration again", m.log_text())
res = lua_session(m, headers("long report"), "budget meeting minutes\r\n" * 400,
                  queue_id="ERR1")
tap.ok(res.get("eom") in ("t", "y") and not res["adds"],
       "an internal error (temp file) gives the default tempfail", res)
seen.append(("ERR1", "tempfail"))
site.set("milter", "default_action", "accept")
tap.ok(m.reload(), "and again", m.log_text())
res = lua_session(m, headers("long report"), "budget meeting minutes\r\n" * 400,
                  queue_id="ERR2")
tap.ok(res.get("eom") == "a", "default_action = accept lets it through on error", res)
seen.append(("ERR2", "accept"))

# 11. database down: the model in memory keeps scoring
site.set("milter", "tmp_dir", TMP)
site.set("milter", "default_action", "tempfail")
site.set("database", "conninfo", "host=127.0.0.1 port=1 dbname=none")
m.reload()
tap.ok(m.wait_log("refresh failed, keeping the one in memory", 15),
       "a database outage keeps the model in memory", m.log_text()[-2000:])
res = lua_session(m, headers("jackpot winner", sender="Promo <promo@deals.example>"), "casino lottery bonus prize viagra offer\r\n",
                  queue_id="SPAM4")
tap.ok(res.get("flag") == "YES", "spam is still recognised while the database is down", res)
seen.append(("SPAM4", "hold"))

# 12. one verdict per message, with envelope and attachments
events = {e.get("queue_id"): e for e in spool_events(site.spool, "verdict")}
tap.eq(sorted((q, events.get(q, {}).get("action")) for q, _ in seen), sorted(seen),
       "every message has a verdict event with its action")
e = events.get("BIG1", {})
tap.ok(e.get("sender") == "sender@example.org" and e.get("recipients") == ["user@example.test"]
       and e.get("ip") == "192.0.2.7" and e.get("attachments", [{}])[0].get("size") == 150000,
       "a verdict has sender, recipients, client, attachment sizes", e)
tap.ok(events.get("SPAM1", {}).get("tokens"), "a verdict lists the strongest tokens",
       events.get("SPAM1"))
m.stop()

# 13. auditd files the verdicts
site.set("database", "conninfo", site.pg.conninfo(site.db))
try:
    from auditlib import Auditd  # noqa: E402
    r = Auditd(site).once(check=False)
    rows = site.sql("SELECT queue_id, action FROM audit.mail_verdicts ORDER BY queue_id")
    if not tap.eq(sorted(tuple(x) for x in rows), sorted(seen),
                  "mailfort-auditd files one audit.mail_verdicts row per message"):
        tap.diag(r.stdout + r.stderr)
    row = site.sql("SELECT sender, recipients::text, host(client_ip), score IS NOT NULL,"
                   " jsonb_array_length(attachments) FROM audit.mail_verdicts"
                   " WHERE queue_id = 'BIG1'")
    tap.eq(row, [["sender@example.org", "{user@example.test}", "192.0.2.7", "t", "1"]],
           "the verdict row has the envelope, client and attachments")
except ImportError as e:
    tap.ok(False, "mailfort-auditd's test harness is available", e)
tap.done()
