#!/usr/bin/env python3
"""Attack 5: one bad record must not stop the trail.

A hostile producer writes, between ordinary events, records that
PostgreSQL would refuse or that exceed what mailfort-auditd stores: an auth
event with a 3,000-character user name (an index row too large), one with a
3,000-character session, and a verdict whose 3,000-character Message-ID
makes the database refuse the batch when the verdict is filed.  Each is
quarantined: a "quarantined" event takes its seq in the chain, the record
is kept byte for byte in audit.quarantine, a critical "quarantine" alert is
raised; the events after it are shipped, exactly once, and "mailfortctl
audit verify" is OK and checks the quarantined records against their
digests.  A superuser who changes a quarantined record is named by verify.
"""
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, auth_event, events, spool_append  # noqa: E402

site = Site("audit-attack-quarantine", extra={"spool": {"node": "n1"},
                                              "auditd": {"batch_size": 50, "alerts": "yes"}})
auditd = Auditd(site)


def noise(n):
    """n characters that do not compress (an index would take them whole)."""
    return os.urandom(n // 2 + 1).hex()[:n]


now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
long_user = auth_event(noise(3000), "192.0.2.9", result="fail", reason="bad_password")
ev = json.loads(auth_event("bob", "192.0.2.9"))
ev["session"] = noise(3000)
long_session = json.dumps(ev)
long_msgid = json.dumps({"v": 1, "type": "verdict", "time": now, "node": "n1", "pid": 2,
                         "queue_id": "4XyZ", "message_id": "<%s@example.test>" % noise(3000),
                         "sender": "a@example.test", "recipients": ["b@example.test"],
                         "ip": "192.0.2.10", "score": 1.5, "action": "accept"})
before = [auth_event("before%d" % i, "192.0.2.1", result="ok", reason="ok") for i in range(4)]
after = [auth_event("after%d" % i, "192.0.2.2", result="ok", reason="ok") for i in range(4)]
records = before + [long_user] + before[:1] + [long_msgid] + [long_session] + after
spool_append(site, records)
r = auditd.once(check=False)
tap.ok("quarantined" in r.stderr, "auditd logs the quarantine", r.stderr[-3000:])
total = len(records)
tap.eq(site.scalar("SELECT last_seq FROM mailfort.audit_heads WHERE node = 'n1'"), str(total),
       "every record has its seq: the trail did not stop (%d)" % total)
rows = events(site)
tap.eq([e["_seq"] for e in rows], list(range(1, total + 1)), "seq 1..%d, each once" % total)
types = {e["_seq"]: e["type"] for e in rows}
bad_seqs = [5, 7, 8]
tap.eq([types[s] for s in bad_seqs], ["quarantined"] * 3, "the three bad records are quarantined in place")
tap.eq([e["user"] for e in rows if e["type"] == "auth" and e["user"].startswith("after")],
       ["after0", "after1", "after2", "after3"], "the events after them were shipped")

q = {int(s): (reason, state, bytes.fromhex(rec[2:]))
     for s, reason, state, rec in site.sql("SELECT seq, reason, coalesce(sqlstate, ''), record "
                                           "FROM audit.quarantine ORDER BY seq")}
tap.eq(sorted(q), bad_seqs, "audit.quarantine holds the three records")
tap.eq([q[s][2] for s in bad_seqs], [long_user.encode(), long_msgid.encode(), long_session.encode()],
       "... byte for byte as they were spooled")
tap.ok("user" in q[5][0] and "3000 bytes" in q[5][0], "the user name's reason says which field and how long",
       q[5][0])
tap.ok(q[7][1] == "54000" and "index row size" in q[7][0],
       "the Message-ID: the database's own refusal (SQLSTATE 54000) is kept", q[7])
tap.ok("session" in q[8][0], "the session's reason names it", q[8][0])
stand = [e for e in rows if e["_seq"] == 5][0]
tap.eq(stand["digest"], hashlib.blake2b(long_user.encode(), digest_size=32).hexdigest(),
       "the chained event carries the record's BLAKE2b-256 digest")
tap.ok(stand["original_type"] == "auth" and len(stand["user"]) < 300 and stand.get("user_truncated") is True,
       "... its original type and the user name cut to size, flagged", {k: str(v)[:40] for k, v in stand.items()})
alerts = site.sql("SELECT rule, severity, event_seq FROM audit.alerts WHERE rule = 'quarantine' ORDER BY event_seq")
tap.eq(alerts, [["quarantine", "critical", str(s)] for s in bad_seqs], "one critical alert per quarantined record")
tap.eq(site.scalar("SELECT count(*) FROM audit.mail_verdicts"), "0",
       "the refused verdict was not filed (its record is in quarantine)")

r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0 and "3 quarantined records match their digests" in r.stdout,
       "verify: OK, quarantined records checked", r.stdout + r.stderr)

# later events still ship, nothing is repeated
spool_append(site, [auth_event("later", "192.0.2.3", result="ok", reason="ok")])
auditd.once()
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events WHERE node = 'n1'"), str(total + 1),
       "a later event is shipped, nothing twice")

# a superuser changes a quarantined record
site.sql("ALTER TABLE mailfort.audit_quarantine DISABLE TRIGGER ALL; "
         "UPDATE mailfort.audit_quarantine SET record = record || '\\x20'::bytea WHERE seq = 7; "
         "ALTER TABLE mailfort.audit_quarantine ENABLE ALWAYS TRIGGER audit_quarantine_no_change")
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 1 and "seq 7: changed: the quarantined record does not match" in r.stdout,
       "a changed quarantined record: verify fails naming its seq", r.stdout + r.stderr)
r = site.pg.psql("DELETE FROM mailfort.audit_quarantine", site.db, check=False)
tap.ok(r.returncode != 0 and "append-only" in r.stderr, "quarantined records are append-only", r.stderr)
tap.done()
