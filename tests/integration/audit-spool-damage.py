#!/usr/bin/env python3
"""mailfort-auditd and a damaged spool: nothing valid is lost, and the
damage itself is recorded.

A writer that dies in the middle of a record leaves an incomplete record at
the end of the spool.  auditd must not wait behind it for ever: after a few
seconds it seals the segment, the reader skips the remnant, a
"spool_damage" event (segment, offset, length) goes into the trail, and the
events written after it are shipped.  A record that is not a valid event is
stored as type "invalid" with its text.  A milter verdict event is filed
into audit.mail_verdicts.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, auth_event, events, spool_append  # noqa: E402

site = Site("audit-damage", extra={"spool": {"node": "n1"}, "auditd": {"alerts": "no"}})
auditd = Auditd(site)
spool_append(site, [auth_event("a%d" % i, "192.0.2.1", result="ok", reason="ok") for i in range(2)])
auditd.start()
tap.eq(auditd.wait_seq(2), 2, "two events shipped")

newest = max(f for f in os.listdir(site.spool) if f.startswith("events."))
with open(os.path.join(site.spool, newest), "ab") as f:
    f.write(b"MFSR" + (200).to_bytes(4, "little") + b"\0" * 16 + b'{"type":"cut')  # died mid-write
tap.eq(auditd.wait_seq(3, timeout=30), 3, "the incomplete record is reported after the grace time")
spool_append(site, [auth_event("after", "192.0.2.1", result="ok", reason="ok"), "this is not json"])
tap.eq(auditd.wait_seq(5, timeout=30), 5, "records written after the damage are shipped")
tap.eq(auditd.stop(), 0, "auditd stops cleanly")
ev = events(site)
tap.eq([e["type"] for e in ev], ["auth", "auth", "spool_damage", "auth", "invalid"],
       "the damage and the invalid record are in the trail, in order")
d = ev[2]
tap.ok(d.get("length", 0) > 0 and d.get("segment", 0) >= 1 and "reason" in d,
       "spool_damage says where and how many bytes", d)
tap.eq((ev[4]["raw"], ev[4]["reason"]), ("this is not json", "event is not valid JSON"),
       "an invalid record keeps its text")

# milter verdicts flow through the same spool and are filed for auditors
verdict = json.dumps({"v": 1, "type": "verdict", "time": "2026-11-27T06:00:00.000000Z", "node": "mx1",
                      "pid": 7, "queue_id": "4Xyz1", "sender": "s@example.test",
                      "recipients": ["a@example.test", "b@example.test"], "ip": "198.51.100.7",
                      "message_id": "<v1@example.test>", "action": "reject", "score": 9.5,
                      "rules": [{"name": "BAYES_99", "score": 5}], "attachments": []})
spool_append(site, [verdict])
auditd.once()
rows = site.sql("SELECT queue_id, sender, recipients, host(client_ip), score, action, message_id, "
                "event_node, event_seq FROM audit.mail_verdicts")
tap.eq(rows, [["4Xyz1", "s@example.test", "{a@example.test,b@example.test}", "198.51.100.7", "9.5",
               "reject", "<v1@example.test>", "n1", "6"]],
       "a verdict event becomes a row of audit.mail_verdicts pointing at its event")
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0, "the trail verifies", r.stdout + r.stderr)
tap.done()
