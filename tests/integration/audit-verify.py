#!/usr/bin/env python3
"""mailfortctl audit verify against a tampering database superuser.

auditd ships 20 events with a signed checkpoint every 5.  An untouched log
verifies OK.  Then, each time with the append-only triggers disabled (as
only a superuser can) and undone afterwards: an event's payload changed, an
indexed column changed, a row deleted in the middle, the newest rows deleted
(with the chain head rewound), a forged row inserted with a correct-looking
hash, a checkpoint altered.  verify must fail and name the row each time.
A forged row appended after the last checkpoint is reported as unsigned, and
once auditd ships the next real event it is named as inserted.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
import mailfort  # noqa: E402
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, auth_event, submit_events  # noqa: E402

site = Site("audit-verify", extra={"spool": {"node": "n1"},
                                   "auditd": {"batch_size": 5, "checkpoint_events": 5,
                                              "alerts": "no"}})
auditd = Auditd(site)
submit_events(site, [auth_event("user%02d" % i, "192.0.2.%d" % (i + 1), result="ok", reason="ok")
                     for i in range(20)])
auditd.once()
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events"), "20", "20 events shipped")
tap.eq(site.sql("SELECT seq FROM mailfort.audit_checkpoints ORDER BY seq"),
       [["5"], ["10"], ["15"], ["20"]], "a signed checkpoint every 5 events")


def verify(*args):
    r = site.ctl("audit", "verify", *args)
    return r.returncode, (r.stdout + r.stderr).strip()


rc, out = verify()
tap.ok(rc == 0 and out.endswith("OK") and "20 events verified" in out, "untouched log: OK", out)

TRIGGERS_OFF = ("ALTER TABLE mailfort.audit_events DISABLE TRIGGER ALL; "
                "ALTER TABLE mailfort.audit_heads DISABLE TRIGGER ALL; "
                "ALTER TABLE mailfort.audit_checkpoints DISABLE TRIGGER ALL; ")
TRIGGERS_ON = ("ALTER TABLE mailfort.audit_events ENABLE TRIGGER ALL; "
               "ALTER TABLE mailfort.audit_heads ENABLE TRIGGER ALL; "
               "ALTER TABLE mailfort.audit_checkpoints ENABLE TRIGGER ALL; "
               + "".join("ALTER TABLE mailfort.%s ENABLE ALWAYS TRIGGER %s; " % tt for tt in [
                   ("audit_events", "audit_events_advance"), ("audit_events", "audit_events_no_change"),
                   ("audit_heads", "audit_heads_forward"), ("audit_heads", "audit_heads_no_delete"),
                   ("audit_heads", "audit_heads_no_truncate"),
                   ("audit_checkpoints", "audit_checkpoints_no_change"),
                   ("audit_checkpoints", "audit_checkpoints_no_truncate")]))


def superuser(sql, params=None):
    site.sql(TRIGGERS_OFF + sql + "; " + TRIGGERS_ON, params=params)


def case(what, tamper, undo, expect):
    superuser(tamper)
    rc, out = verify()
    tap.ok(rc == 1 and expect in out, "%s: verify fails naming the row (%s)" % (what, expect), out)
    superuser(undo)
    rc, out = verify()
    tap.ok(rc == 0, "%s: undone, verifies again" % what, out)


# the triggers really refuse without the superuser's help
r = site.pg.psql("UPDATE mailfort.audit_events SET username = 'x' WHERE seq = 1", site.db, check=False)
tap.ok(r.returncode != 0 and "append-only" in r.stderr, "UPDATE refused by the append-only trigger", r.stderr)

orig7 = site.scalar("SELECT payload FROM mailfort.audit_events WHERE seq = 7")
case("payload changed",
     "UPDATE mailfort.audit_events SET payload = replace(payload, 'user06', 'someone') WHERE seq = 7",
     "UPDATE mailfort.audit_events SET payload = :'p' WHERE seq = 7".replace(":'p'", "$q$%s$q$" % orig7),
     "seq 7: changed")
case("column changed",
     "UPDATE mailfort.audit_events SET username = 'someone' WHERE seq = 8",
     "UPDATE mailfort.audit_events SET username = 'user07' WHERE seq = 8",
     "seq 8: changed: column username")

saved = "CREATE TABLE IF NOT EXISTS public.saved AS SELECT * FROM mailfort.audit_events WHERE false"
site.sql(saved)
case("row deleted",
     "INSERT INTO public.saved SELECT * FROM mailfort.audit_events WHERE seq = 12; "
     "DELETE FROM mailfort.audit_events WHERE seq = 12",
     "INSERT INTO mailfort.audit_events SELECT * FROM public.saved; DELETE FROM public.saved",
     "seq 12: missing")
case("newest rows deleted, chain head rewound",
     "INSERT INTO public.saved SELECT * FROM mailfort.audit_events WHERE seq > 17; "
     "DELETE FROM mailfort.audit_events WHERE seq > 17; "
     "UPDATE mailfort.audit_heads SET last_seq = 17, last_hash = "
     "(SELECT hash FROM mailfort.audit_events WHERE seq = 17)",
     "INSERT INTO mailfort.audit_events SELECT * FROM public.saved; DELETE FROM public.saved; "
     "UPDATE mailfort.audit_heads SET last_seq = 20, last_hash = "
     "(SELECT hash FROM mailfort.audit_events WHERE seq = 20)",
     "seq 18 to 20: missing")


def chain_hash(prev, node, seq, payload):
    h = hashlib.blake2b(digest_size=32)
    h.update(b"mailfort-audit-v1" + prev + seq.to_bytes(8, "big") + len(node).to_bytes(4, "big")
             + node + len(payload).to_bytes(4, "big") + payload)
    return h.digest()


def forged_row(seq, prev_hex):
    payload = json.dumps({"v": 1, "type": "login", "time": "2026-01-01T00:00:00.000000Z",
                          "node": "n1", "user": "forger", "result": "ok"}, separators=(",", ":"))
    prev = bytes.fromhex(prev_hex[2:])
    h = chain_hash(prev, b"n1", seq, payload.encode())
    return ("INSERT INTO mailfort.audit_events (node, seq, event_time, type, username, payload, "
            "prev_hash, hash) VALUES ('n1', %d, '2026-01-01T00:00:00Z', 'login', 'forger', "
            "$q$%s$q$, '\\x%s', '\\x%s')" % (seq, payload, prev.hex(), h.hex()))


h8 = site.scalar("SELECT hash FROM mailfort.audit_events WHERE seq = 8")
case("forged row inserted (duplicate seq, hash chained to seq 8)",
     forged_row(9, h8),
     "DELETE FROM mailfort.audit_events WHERE username = 'forger'",
     "seq 9: inserted")
case("checkpoint altered",
     "UPDATE mailfort.audit_checkpoints SET count = 11 WHERE seq = 10",
     "UPDATE mailfort.audit_checkpoints SET count = 10 WHERE seq = 10",
     "checkpoint at seq 10")

# forged row after the newest checkpoint: unsigned, then caught as inserted
h20 = site.scalar("SELECT hash FROM mailfort.audit_events WHERE seq = 20")
superuser(forged_row(21, h20))
rc, out = verify()
tap.ok("1 newest events not yet covered by a checkpoint" in out,
       "a row after the last checkpoint is reported as not yet signed", out)
submit_events(site, [auth_event("late", "192.0.2.99", result="ok", reason="ok")])
auditd.once()
rc, out = verify()
tap.ok(rc == 1 and "seq 21: inserted" in out,
       "once auditd stores the real seq 21, the forged row is named as inserted", out)
superuser("DELETE FROM mailfort.audit_events WHERE username = 'forger'")
rc, out = verify()
tap.ok(rc == 0, "without the forged row the trail verifies", out)

rc, out = verify("--since", "1s")
tap.ok(rc == 0, "verify --since anchors at a checkpoint", out)

# an auditor verifies and searches with the auditor role, and reads nothing else
site.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mf_test_auditor') "
         "THEN CREATE ROLE mf_test_auditor LOGIN; END IF; END $$; "
         "GRANT mailfort_auditor TO mf_test_auditor")
conf = os.path.join(site.dir, "auditor.conf")
with open(site.conf) as f:
    text = f.read()
with open(conf, "w") as f:
    f.write(text.replace("user=%s" % site.pg.user, "user=mf_test_auditor"))
r = mailfort.run([mailfort.mailfortctl_path(), "--config", conf, "audit", "verify"])
tap.ok(r.returncode == 0 and r.stdout.strip().endswith("OK"), "the auditor role can run verify", r.stdout + r.stderr)
r = mailfort.run([mailfort.mailfortctl_path(), "--config", conf, "audit", "search", "--user", "late"])
tap.ok(r.returncode == 0 and "late" in r.stdout, "the auditor role can search", r.stdout + r.stderr)
r = site.pg.psql("SELECT count(*) FROM mailfort.accounts", site.db, user="mf_test_auditor", check=False)
tap.ok(r.returncode != 0 and "permission denied" in r.stderr, "... and cannot read the accounts table", r.stderr)
tap.done()
