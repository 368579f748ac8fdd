#!/usr/bin/env python3
"""Attack 6: reading or testing message content without a read event.

A real Dovecot with mailfort_audit, a real IMAP client (imaplib) and a real
POP3 client (poplib), as the mail user would use them.  Every command that
returns message content produces exactly one "read" event for the message,
with the way it was read: FETCH PREVIEW and SNIPPET ("preview", also when
the preview comes from Dovecot's cache), BINARY[1] ("binary"), RFC822.TEXT
and BODY.PEEK[TEXT] ("mail body"), RFC822 ("full mail"), POP3 RETR and TOP.
Metadata (FLAGS, ENVELOPE, RFC822.SIZE) is not a read.  Every SEARCH, SORT
and THREAD that tests content (BODY, TEXT) produces exactly one "search"
event with the mailbox, the kind of criteria and the number of hits, and no
event ever contains the words searched for.  Searches on flags or headers
produce none.
"""
import json
import os
import poplib
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, audit_dovecot, events, message  # noqa: E402

site = Site("audit-attack-content", extra={"spool": {"node": "n1"}, "auditd": {"alerts": "no"}})
auditd = Auditd(site)
dc = audit_dovecot("ac", site)
dc.start()

WORD1, WORD2 = "Pineapple", "Quokkas"
bodies = ["plain note one\r\n", "plain note two\r\n", "the %s is ripe\r\n" % WORD1,
          "plain note four\r\n", "plain note five\r\n", "plain note six\r\n",
          "plain note seven\r\n", "%s everywhere\r\n" % WORD2, "more %s here\r\n" % WORD2]
for i, body in enumerate(bodies, 1):
    dc.lmtp_deliver("s@example.test", "alice", message("m%d" % i, body=body, msgid="<m%d@example.test>" % i))
for i in range(1, 3):
    dc.lmtp_deliver("s@example.test", "bob", message("p%d" % i, body="pop %d\r\n" % i,
                                                     msgid="<p%d@example.test>" % i))

m = dc.imap()
m.login("alice", "alicepw")
m.select("INBOX")
replies = {}
for uid, item in [(1, "PREVIEW"), (2, "SNIPPET (FUZZY)"), (3, "BINARY[1]"), (4, "RFC822.TEXT"),
                  (5, "RFC822"), (6, "BODY.PEEK[TEXT]"), (7, "FLAGS RFC822.SIZE ENVELOPE")]:
    typ, data = m.uid("FETCH", str(uid), "(%s)" % item)
    replies[item] = (typ, repr(data))
tap.ok(replies["PREVIEW"][0] == "OK" and "plain note one" in replies["PREVIEW"][1],
       "FETCH PREVIEW returns message text", replies["PREVIEW"])
tap.ok(replies["SNIPPET (FUZZY)"][0] == "OK" and "plain note two" in replies["SNIPPET (FUZZY)"][1],
       "FETCH SNIPPET returns message text", replies["SNIPPET (FUZZY)"])
# the preview is now in Dovecot's cache: a second session reads it from there
m2 = dc.imap()
m2.login("alice", "alicepw")
m2.select("INBOX")
typ, data = m2.uid("FETCH", "1", "(PREVIEW (LAZY))")
tap.ok(typ == "OK" and "plain note one" in repr(data), "PREVIEW (LAZY) answered from the cache", data)
m2.logout()

searches = [("SEARCH", ("BODY", WORD1)), ("SEARCH", ("TEXT", WORD2)),
            ("SEARCH", ("OR", "BODY", WORD1, "TEXT", WORD2)),
            ("SORT", ("(DATE)", "UTF-8", "TEXT", WORD2)),
            ("THREAD", ("REFERENCES", "UTF-8", "BODY", WORD1)),
            ("SEARCH", ("FLAGGED",)), ("SEARCH", ("SUBJECT", "m3"))]
found = []
for cmd, args in searches:
    typ, data = m.uid(cmd, *args)
    found.append((cmd, typ, data))
tap.ok(all(t == "OK" for _c, t, _d in found), "every search command succeeds", found)
tap.ok(found[0][2] == [b"3"] and found[1][2] == [b"8 9"], "SEARCH BODY/TEXT find the messages (a content oracle)",
       found)
m.logout()

p = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=10)
p.user("bob")
p.pass_("bobpw")
retr = p.retr(1)
top = p.top(2, 0)
p.quit()
tap.ok(b"pop 1" in b"\n".join(retr[1]), "POP3 RETR returns the message", retr)
time.sleep(0.5)
auditd.once()

ev = events(site)
reads = [(e["user"], e["uid"], e["reason"], e["message_id"]) for e in ev if e["type"] == "read"]
tap.eq(reads, [("alice", 1, "preview", "<m1@example.test>"), ("alice", 2, "preview", "<m2@example.test>"),
               ("alice", 3, "binary", "<m3@example.test>"), ("alice", 4, "mail body", "<m4@example.test>"),
               ("alice", 5, "full mail", "<m5@example.test>"), ("alice", 6, "mail body", "<m6@example.test>"),
               ("alice", 1, "preview", "<m1@example.test>"),
               ("bob", 1, "RETR", "<p1@example.test>"), ("bob", 2, "TOP", "<p2@example.test>")],
       "exactly one read event per content fetch, none for metadata (uid 7)")
srch = [(e["user"], e["mailbox"], e["criteria"], e["hits"]) for e in ev if e["type"] == "search"]
tap.eq(srch, [("alice", "INBOX", "body", 1), ("alice", "INBOX", "text", 2), ("alice", "INBOX", "body,text", 3),
              ("alice", "INBOX", "text", 2), ("alice", "INBOX", "body", 1)],
       "exactly one search event per content search (SEARCH, SORT, THREAD), with the hits; none for FLAGGED/SUBJECT")
payloads = "\n".join(site.scalar("SELECT string_agg(payload, E'\\n') FROM mailfort.audit_events") .split("\n"))
tap.ok(WORD1.lower() not in payloads.lower() and WORD2.lower() not in payloads.lower(),
       "no event contains the words searched for", [json.loads(x) for x in payloads.split("\n")
                                                    if WORD1.lower() in x.lower() or WORD2.lower() in x.lower()])
r = site.ctl("audit", "search", "--event", "search", "--format", "json")
tap.ok(r.returncode == 0 and len(r.stdout.splitlines()) == 5, "auditors find them with mailfortctl audit search",
       r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM audit.message_access WHERE action = 'search'"), "5",
       "... and in audit.message_access")
dc.stop()
tap.done()
