#!/usr/bin/env python3
"""End to end, through real Postfix and Dovecot: the story scripts/demo tells,
asserted.

Submission is accepted only with password + a valid code; the report
arrives byte-identical in bob's INBOX; its file on disk holds no plaintext;
spam and an oversized attachment are handled as configured; a wrong code
and a replayed code are refused; the audit rows for all of it are present,
an alert is raised for a burst of failed logins, and the trail verifies.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests", "harness"))
from mailfort import tap  # noqa: E402
from story import Stack, Story  # noqa: E402


def quiet(_msg):
    pass


stack = Stack("e2e", say=tap.diag).start()
story = Story(stack, say=quiet)

r = story.send_report()
tap.ok(r["password_only"].startswith("refused"), "submission refuses the password without a code",
       r["password_only"])
tap.eq(r["refused"], {}, "submission with password + code accepts the report")
tap.ok(r["delivered"], "the report is delivered to bob", stack.postfix.maillog_text()[-3000:])

r = story.outside_mail()
spam_code = r["spam"][0]
tap.ok(spam_code == 550 or (spam_code == 250 and r["held"]),
       "spam from outside is rejected (550) or held", r)
tap.ok(r["oversized"][0] == 552 and "5.3.4" in r["oversized"][1],
       "an attachment over the limit is refused with 552 5.3.4", r["oversized"])
tap.ok("scans.tar" in r["oversized"][1], "the 552 reply names the file", r["oversized"][1])

r = story.read_report()
tap.ok(r["wrong_code"].startswith("refused"), "IMAP login with a wrong code is refused", r["wrong_code"])
tap.eq(r["found"], 1, "bob finds the report in his INBOX by Message-ID")
received = r["received"]
# Delivery adds header fields (Return-Path, Delivered-To, Received, the
# milter's X-Spam-*); everything alice sent must arrive unchanged: the body
# byte for byte, and each of her header fields.
sent_head, _, sent_body = story.sent.partition(b"\r\n\r\n")
recv_head, _, recv_body = received.partition(b"\r\n\r\n")
tap.ok(recv_body == sent_body, "the report's body (text and PDF) arrives byte-identical",
       "sent %d body bytes, received %d" % (len(sent_body), len(recv_body)))
missing = [h for h in sent_head.split(b"\r\n") if h and h not in recv_head.split(b"\r\n")]
tap.eq(missing, [], "every header line alice sent arrives unchanged")
tap.ok(r["replay"].startswith("refused"), "a second IMAP login with the same code is refused (replay)",
       r["replay"])

r = story.on_disk()
tap.ok(r["files"] > 0 and r["stored"], "bob's mail home holds the stored message")
tap.eq(r["leaks"], [], "no file under bob's mail home contains the subject/body marker")
tap.ok(story.marker.encode() not in r["stored"] and b"Quarterly report" not in r["stored"],
       "the stored message file is ciphertext")

r = story.audit_trail()
tap.ok(any(row[1] == "alice" and row[2] == "smtp" and row[3] == "ok" for row in r["auth"]),
       "audit.auth_events records alice's authenticated submission", r["auth"])
tap.ok(any(row[1] == "bob" and row[4] == "replay" for row in r["auth"]),
       "audit.auth_events records the replayed code as a replay", r["auth"])
users = [row[0] for row in r["logins"]]
tap.ok("bob" in users, "audit.logins records bob's IMAP login", r["logins"])
tap.ok(any(row[0] == "bob" and "Thunderbird" in (row[3] if len(row) > 3 else "")
           for row in r["logins"]), "the login records the client name from IMAP ID", r["logins"])
tap.ok(any(row[0] == "bob" and row[2] == story.message_id for row in r["reads"]),
       "audit.message_access records bob reading the report by Message-ID", r["reads"])
tap.ok(len(r["verdicts"]) >= 2, "audit.mail_verdicts has a verdict for the mail from outside",
       r["verdicts"])
tap.ok(any(row[3].startswith("TLSv1.") for row in r["verdicts"])
       and any(row[3] == "none" for row in r["verdicts"]),
       "the verdicts say which mail from outside came over STARTTLS and which in plain",
       r["verdicts"])
tap.ok(all(row[4] in ("t", "true", True) for row in r["logins"]) and r["logins"],
       "every IMAP login of the story was under TLS", r["logins"])
tap.ok(any("fail" in row[0] for row in r["alerts"]), "a burst of failed logins raises an alert",
       r["alerts"])
tap.eq(r["verify"][0], 0, "mailfortctl audit verify succeeds on the untouched trail")
tap.ok("OK" in r["verify"][1], "audit verify says OK", r["verify"][1])

stack.stop()
tap.done()
