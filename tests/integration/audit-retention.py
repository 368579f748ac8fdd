#!/usr/bin/env python3
"""Retention (signed, oldest first) and reload of mailfort-auditd.

Monthly partitions are created ahead.  Events of an old month (its
partition made as ensure_partitions would have made it back then) are
shipped and checkpointed.  "mailfortctl audit retire", run by the schema
owner, keeps them while they are younger than [audit] retention_min,
refuses a retention_min below the legal 12 months, and then retires them:
a signed record of the seq range in audit.retired, the partition
detached.  "mailfortctl audit verify" still says OK, counting the retired
rows.  A partition not yet covered by a checkpoint is kept, and says why.
SIGHUP reloads the configuration of a running daemon.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, auth_event, spool_append  # noqa: E402

site = Site("audit-retention", extra={"spool": {"node": "n1"},
                                      "auditd": {"alerts": "no", "partitions_ahead": 2}})
auditd = Auditd(site)
auditd.once()
parts = [r[0] for r in site.sql("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                "WHERE i.inhparent = 'mailfort.audit_events'::regclass ORDER BY 1")]
month = time.strftime("%Y_%m", time.gmtime())
tap.ok("audit_events_" + month in parts and len(parts) >= 4,
       "partitions for this month and ahead exist", parts)

# an old month, as if the system had been running then
site.sql("SET ROLE mailfort_owner; CREATE TABLE mailfort.audit_events_2025_01 PARTITION OF "
         "mailfort.audit_events FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2025-02-01 00:00+00')")
old = [auth_event("old%d" % i, "192.0.2.1", result="ok", reason="ok", when="2025-01-15T10:00:0%d.000000Z" % i)
       for i in range(5)]
spool_append(site, old)
auditd.once()
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events_2025_01"), "5", "old events stored in their month")
spool_append(site, [auth_event("new%d" % i, "192.0.2.2", result="ok", reason="ok") for i in range(3)])
auditd.once()

# a second old month whose rows are not covered by any checkpoint yet
site.sql("SET ROLE mailfort_owner; CREATE TABLE mailfort.audit_events_2025_02 PARTITION OF "
         "mailfort.audit_events FOR VALUES FROM ('2025-02-01 00:00+00') TO ('2025-03-01 00:00+00')")
site.sql("ALTER TABLE mailfort.audit_events DISABLE TRIGGER ALL; "
         "INSERT INTO mailfort.audit_events_2025_02 (node, seq, event_time, type, payload, prev_hash, hash) "
         "VALUES ('other', 1, '2025-02-02', 'x', '{\"type\":\"x\"}', '\\x00', '\\x00'); "
         "ALTER TABLE mailfort.audit_events ENABLE TRIGGER ALL; "
         "ALTER TABLE mailfort.audit_events ENABLE ALWAYS TRIGGER audit_events_advance; "
         "ALTER TABLE mailfort.audit_events ENABLE ALWAYS TRIGGER audit_events_no_change")

# younger than retention_min (24 months by default): kept
r = site.ctl("audit", "retire")
tap.ok(r.returncode == 0 and "nothing to retire" in r.stdout and "retired" not in r.stdout.replace("to retire", ""),
       "retire keeps events younger than retention_min (default 24 months)", r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM audit.retired"), "0", "... and records nothing")

# below the legal minimum: refused, naming it
site.set("audit", "retention_min", 6)
r = site.ctl("audit", "retire")
tap.ok(r.returncode == 1 and "retention_min" in r.stderr and "legal minimum is 12 months" in r.stderr,
       "retention_min = 6 is refused with the legal minimum named", r.stderr)
r = site.pg.psql("SELECT * FROM mailfort.audit_retire_candidates(6)", site.db, check=False)
tap.ok(r.returncode != 0 and "at least 12 months" in r.stderr,
       "the database refuses a retention below 12 months too", r.stderr)

site.set("audit", "retention_min", 12)
r = site.ctl("audit", "retire", "--dry-run")
tap.ok(r.returncode == 0 and "would retire audit_events_2025_01: node n1 seq 1 to 5 (5 events)" in r.stdout,
       "--dry-run names what would be retired", r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM audit.retired"), "0", "... and changes nothing")
r = site.ctl("audit", "retire")
tap.ok(r.returncode == 0 and "retired audit_events_2025_01: node n1 seq 1 to 5 (5 events)" in r.stdout,
       "retire: the checkpointed old partition is retired", r.stdout + r.stderr)
tap.ok("kept audit_events_2025_02: node other: not covered by a signed checkpoint" in r.stdout,
       "a partition not covered by a checkpoint is kept, and why is said", r.stdout)
detached = site.sql("SELECT partition, node, first_seq, last_seq, count, octet_length(signature), "
                    "retired_by, min_months FROM audit.retired")
tap.eq(detached, [["audit_events_2025_01", "n1", "1", "5", "5", "64", site.pg.user, "12"]],
       "auditors see the signed retirement: range, signature, who, under which minimum")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events WHERE node = 'n1'"), "3",
       "the retired rows are no longer in audit_events")
tap.eq(site.scalar("SELECT to_regclass('mailfort.audit_events_2025_01') IS NOT NULL"), "t",
       "the detached table is kept for archiving, not dropped")
tap.eq(site.scalar("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'mailfort.audit_events_2025_02'::regclass"),
       "1", "a partition not covered by a checkpoint is kept")
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0 and "5 older events retired" in r.stdout, "verify: OK, retired rows counted",
       r.stdout + r.stderr)
r = site.ctl("audit", "retire")
tap.ok(r.returncode == 0 and "retired audit" not in r.stdout, "a second run retires nothing more",
       r.stdout + r.stderr)

# auditd no longer retires, whatever retention_months says
site.set("auditd", "retention_months", 6)
r = auditd.once()
tap.ok("retention_months is ignored" in r.stderr, "auditd says retention_months is ignored", r.stderr)

# SIGHUP: a running daemon reloads (here: raises the batch size, logs it)
auditd.start()
time.sleep(1)
site.set("auditd", "batch_size", 7)
auditd.proc.send_signal(signal.SIGHUP)
spool_append(site, [auth_event("hup", "192.0.2.3", result="ok", reason="ok")])
tap.eq(auditd.wait_seq(9, timeout=20), 9, "after SIGHUP the daemon goes on shipping")
rc = auditd.stop()
log = open(os.path.join(os.environ.get("MF_TEST_TMP", "/tmp"), "auditd.log")).read()
tap.ok("configuration reloaded" in log, "SIGHUP reloaded the configuration", log[-800:])
tap.eq(rc, 0, "SIGTERM: clean exit")
tap.done()
