#!/usr/bin/env python3
"""Attacks on retirement and on the audit partitions, as the attacker's own role.

The chain of node n1 holds 15 events: 5 in January 2025, 5 in February
2025 (partitions made as ensure_partitions made them back then) and 5 of
this month, with a signed checkpoint every 5.

Attack 3, a superuser hides the middle of the chain: deletes February's
rows and inserts a matching row into mailfort.audit_retired: unsigned, with
a signature copied from a genuine retirement, and (after January was really
retired) as a "next" retirement with a forged signature.  verify fails each
time and names the seq range.  mailfort_admin and mailfort_auditd cannot
retire at all, and even the schema owner cannot retire a range that is not
the oldest.

Attack 7, a careless or hostile mailfort_admin tries to hide a month:
DETACH, DROP, TRUNCATE of an audit partition, and the retirement
functions; all refused, and the auditor still sees every row.  The schema
owner is stopped by the event triggers.  A superuser who disables them and
detaches a partition is detected: verify fails naming the missing seq
range and the detached partition.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, mailfortctl_path, procs, run, tap, write_config  # noqa: E402
from auditlib import Auditd, auth_event, spool_append  # noqa: E402

site = Site("audit-attack-retire",
            extra={"spool": {"node": "n1"}, "audit": {"retention_min": 12},
                   "auditd": {"alerts": "no", "batch_size": 5, "checkpoint_events": 5}})
auditd = Auditd(site)
pg = site.pg
for month in ("2025_01", "2025_02"):
    y, m = month.split("_")
    nxt = "%s-%02d-01" % (y, int(m) + 1)
    site.sql("SET ROLE mailfort_owner; CREATE TABLE mailfort.audit_events_%s PARTITION OF "
             "mailfort.audit_events FOR VALUES FROM ('%s-%s-01 00:00+00') TO ('%s 00:00+00'); "
             "ALTER TABLE mailfort.audit_events_%s ENABLE ALWAYS TRIGGER audit_events_no_change; "
             "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON mailfort.audit_events_%s "
             "FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change()"
             % (month, y, m, nxt, month, month))
spool_append(site, [auth_event("jan%d" % i, "192.0.2.1", result="ok", reason="ok",
                               when="2025-01-15T10:00:0%d.000000Z" % i) for i in range(5)]
             + [auth_event("feb%d" % i, "192.0.2.2", result="ok", reason="ok",
                           when="2025-02-15T10:00:0%d.000000Z" % i) for i in range(5)]
             + [auth_event("now%d" % i, "192.0.2.3", result="ok", reason="ok") for i in range(5)])
auditd.once()
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events_2025_02"), "5", "February holds seq 6 to 10")


def verify():
    r = site.ctl("audit", "verify")
    return r.returncode, (r.stdout + r.stderr).strip()


rc, out = verify()
tap.ok(rc == 0 and "15 events verified" in out, "untouched: verify OK", out)

roles = []


def login_role(group):
    name = "t_%s_%d" % (group, os.getpid())
    pg.psql('DROP ROLE IF EXISTS "%s"; CREATE ROLE "%s" LOGIN IN ROLE %s' % (name, name, group))
    roles.append(name)
    return name


procs.on_exit(lambda: [pg.psql('DROP OWNED BY "%s"; DROP ROLE IF EXISTS "%s"' % (r, r), site.db, check=False)
                       for r in roles])
admin = login_role("mailfort_admin")
shipper = login_role("mailfort_auditd")
owner = login_role("mailfort_owner")


def as_role(role, sql):
    r = pg.psql(sql, site.db, user=role, check=False)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def refused(role, sql, what, pattern):
    ok, out = as_role(role, sql)
    tap.ok(not ok and pattern in out, what, out)


# ------------------------------------------------------------ attack 7: mailfort_admin
refused(admin, "ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_2025_02",
        "admin: DETACH PARTITION refused", "must be owner")
refused(admin, "DROP TABLE mailfort.audit_events_2025_02", "admin: DROP TABLE of a partition refused",
        "must be owner")
refused(admin, "TRUNCATE mailfort.audit_events_2025_02", "admin: TRUNCATE of a partition refused",
        "permission denied")
refused(admin, "TRUNCATE mailfort.audit_events", "admin: TRUNCATE of the audit table refused",
        "permission denied")
refused(admin, "SELECT mailfort.audit_retire_partitions(1)", "admin: the old unsigned retirement is gone",
        "does not exist")
refused(admin, "SELECT * FROM mailfort.audit_retire_candidates(12)", "admin: cannot list what to retire",
        "permission denied")
refused(admin, "SELECT mailfort.audit_retire_detach('audit_events_2025_01')",
        "admin: cannot detach through the retirement function", "permission denied")
refused(admin, "INSERT INTO mailfort.audit_retired (partition, node, first_seq, last_seq, count, last_hash) "
        "VALUES ('audit_events_2025_02', 'n1', 6, 10, 5, '\\x00')",
        "admin: cannot write a retirement row", "permission denied")
refused(shipper, "SELECT mailfort.audit_retire_detach('audit_events_2025_01')",
        "auditd's role: cannot retire either", "permission denied")
admin_conf = write_config(os.path.join(site.dir, "admin.conf"), dict(
    site.sections, database={"conninfo": pg.conninfo(site.db, user=admin), "connect_timeout": 3}))
r = run([mailfortctl_path(), "--config", admin_conf, "audit", "retire"])
tap.ok(r.returncode == 1 and "permission denied" in r.stderr and "schema owner" in r.stderr,
       "admin: mailfortctl audit retire is refused, saying who may", r.stderr)
ok, out = as_role(admin, "SELECT count(*) FROM audit.events")
tap.ok(ok and out == "15", "after all that the views still show every event", out)
rc, out = verify()
tap.ok(rc == 0, "... and verify is OK", out)

# ------------------------------------------------------------ attack 7: the schema owner
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_2025_02",
        "owner: detaching a partition that holds unretired events is refused", "no signed retirement covers")
refused(owner, "SET ROLE mailfort_owner; DROP TABLE mailfort.audit_events_2025_02",
        "owner: dropping an audit partition is refused", "part of the audit trail")
refused(owner, "SET ROLE mailfort_owner; DROP TABLE mailfort.audit_checkpoints CASCADE",
        "owner: dropping the checkpoints is refused", "part of the audit trail")
refused(owner, "SET ROLE mailfort_owner; TRUNCATE mailfort.audit_events_2025_02",
        "owner: TRUNCATE is refused", "append-only")
# an empty partition hides nothing: it may be detached
ok, out = as_role(owner, "SET ROLE mailfort_owner; CREATE TABLE mailfort.audit_events_2024_06 PARTITION OF "
                  "mailfort.audit_events FOR VALUES FROM ('2024-06-01 00:00+00') TO ('2024-07-01 00:00+00'); "
                  "ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_2024_06")
tap.ok(ok, "owner: an empty partition can still be detached", out)
# the owner's ways around guards that knew the tables by name only
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_events_2025_02 RENAME TO x_hidden; "
        "DROP TABLE mailfort.x_hidden",
        "owner: renaming a partition (to drop it under another name) is refused", "renaming or moving")
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_checkpoints RENAME TO x_ckpts",
        "owner: renaming the checkpoints is refused", "renaming or moving")
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_events_2025_02 SET SCHEMA audit",
        "owner: moving a partition to another schema is refused", "renaming or moving")
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_events DISABLE TRIGGER USER; "
        "DELETE FROM mailfort.audit_events WHERE seq = 7",
        "owner: disabling the append-only triggers is refused", "disabling a trigger")
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_retired DISABLE TRIGGER USER",
        "owner: disabling audit_retired's trigger is refused", "disabling a trigger")
refused(owner, "SET ROLE mailfort_owner; ALTER TABLE mailfort.audit_guarded DISABLE TRIGGER USER; "
        "DELETE FROM mailfort.audit_guarded",
        "owner: the list of guarded tables cannot be emptied", "disabling a trigger")
refused(owner, "SET ROLE mailfort_owner; DELETE FROM mailfort.audit_guarded",
        "owner: ... nor a row deleted from it", "append-only")
ok, out = as_role(admin, "SELECT count(*) FROM audit.events")
rc, vout = verify()
tap.ok(ok and out == "15" and rc == 0, "after the owner's attempts every event is there and "
       "verify is OK", (out, vout))

# ------------------------------------------------------------ attack 3: retirement
refused(owner, "SET ROLE mailfort_owner; SELECT mailfort.audit_retire_record('audit_events_2025_02', 'n1', 6, 10, 5, "
        "(SELECT hash FROM mailfort.audit_events WHERE seq = 10), '\\x%s', "
        "(SELECT signer_key FROM mailfort.audit_checkpoints LIMIT 1), 12)" % ("00" * 64),
        "owner: the middle month cannot be retired while January is stored", "not the oldest events")

TRIGGERS_OFF = ("ALTER TABLE mailfort.audit_events DISABLE TRIGGER ALL; "
                "ALTER TABLE mailfort.audit_retired DISABLE TRIGGER ALL; ")
TRIGGERS_ON = ("ALTER TABLE mailfort.audit_events ENABLE ALWAYS TRIGGER audit_events_advance; "
               "ALTER TABLE mailfort.audit_events ENABLE ALWAYS TRIGGER audit_events_no_change; "
               "ALTER TABLE mailfort.audit_retired ENABLE ALWAYS TRIGGER audit_retired_no_change; ")
site.sql("CREATE TABLE public.saved AS SELECT * FROM mailfort.audit_events WHERE seq BETWEEN 6 AND 10")


def hide_feb(retired_row):
    site.sql(TRIGGERS_OFF + "DELETE FROM mailfort.audit_events WHERE node = 'n1' AND seq BETWEEN 6 AND 10; "
             "INSERT INTO mailfort.audit_retired (partition, node, first_seq, last_seq, count, last_hash, "
             "signature, signer_key) SELECT 'audit_events_2025_02', 'n1', 6, 10, 5, "
             "(SELECT hash FROM public.saved WHERE seq = 10), %s; " % retired_row + TRIGGERS_ON)


def restore_feb():
    site.sql(TRIGGERS_OFF + "DELETE FROM mailfort.audit_retired WHERE partition = 'audit_events_2025_02'; "
             "INSERT INTO mailfort.audit_events SELECT * FROM public.saved; " + TRIGGERS_ON)
    rc, out = verify()
    return rc == 0, out


hide_feb("NULL, NULL")
rc, out = verify()
tap.ok(rc == 1 and "seq 6 to 10" in out and "not signed" in out,
       "superuser: middle rows deleted + unsigned retirement row -> verify fails naming seq 6 to 10", out)
ok, out = restore_feb()
tap.ok(ok, "restored: verify OK again", out)

hide_feb("(SELECT signature FROM mailfort.audit_checkpoints ORDER BY seq LIMIT 1), "
         "(SELECT signer_key FROM mailfort.audit_checkpoints ORDER BY seq LIMIT 1)")
rc, out = verify()
tap.ok(rc == 1 and "seq 6 to 10" in out and "does not verify" in out,
       "superuser: ... with a signature copied from a checkpoint -> verify fails naming seq 6 to 10", out)
ok, out = restore_feb()
tap.ok(ok, "restored: verify OK again", out)

# January is retired for real (signed); then February is hidden behind a
# "next" retirement carrying January's genuine signature
r = site.ctl("audit", "retire")
tap.ok(r.returncode == 0 and "retired audit_events_2025_01: node n1 seq 1 to 5" in r.stdout
       and "retired audit_events_2025_02: node n1 seq 6 to 10" in r.stdout,
       "the owner retires January and February, oldest first", r.stdout + r.stderr)
rc, out = verify()
tap.ok(rc == 0 and "10 older events retired" in out, "verify accepts the signed retirements", out)
UNRETIRE_FEB = ("ALTER TABLE mailfort.audit_retired DISABLE TRIGGER ALL; "
                "DELETE FROM mailfort.audit_retired WHERE partition = 'audit_events_2025_02'; "
                "ALTER TABLE mailfort.audit_retired ENABLE ALWAYS TRIGGER audit_retired_no_change")
# undo February's real retirement (a superuser can), then forge it with January's signature
site.sql(UNRETIRE_FEB)
site.sql("INSERT INTO mailfort.audit_retired (partition, node, first_seq, last_seq, count, last_hash, signature, "
         "signer_key) SELECT 'audit_events_2025_02', 'n1', 6, 10, 5, (SELECT hash FROM public.saved WHERE seq = 10), "
         "signature, signer_key FROM mailfort.audit_retired WHERE partition = 'audit_events_2025_01'")
rc, out = verify()
tap.ok(rc == 1 and "seq 6 to 10" in out and "does not verify" in out,
       "superuser: a genuine signature replayed on another range -> verify fails naming seq 6 to 10", out)
site.sql(UNRETIRE_FEB)
rc, out = verify()
tap.ok(rc == 1 and "seq 6 to 10: missing" in out and "no signed retirement covers them" in out,
       "superuser: rows gone and no retirement row at all -> verify names seq 6 to 10", out)

# ------------------------------------------------------------ attack 7: a superuser detaches
site2 = Site("audit-attack-detach", extra={"spool": {"node": "n1"},
                                           "auditd": {"alerts": "no", "batch_size": 5, "checkpoint_events": 5}})
auditd2 = Auditd(site2)
site2.sql("SET ROLE mailfort_owner; CREATE TABLE mailfort.audit_events_2025_03 PARTITION OF "
          "mailfort.audit_events FOR VALUES FROM ('2025-03-01 00:00+00') TO ('2025-04-01 00:00+00')")
spool_append(site2, [auth_event("a%d" % i, "192.0.2.1", result="ok", reason="ok") for i in range(3)]
             + [auth_event("mar%d" % i, "192.0.2.2", result="ok", reason="ok",
                           when="2025-03-15T10:00:0%d.000000Z" % i) for i in range(4)]
             + [auth_event("b%d" % i, "192.0.2.3", result="ok", reason="ok") for i in range(3)])
auditd2.once()
r = site2.pg.psql("ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_2025_03",
                  site2.db, check=False)
tap.ok(r.returncode != 0 and "no signed retirement covers" in r.stderr,
       "superuser: a plain DETACH is refused by the event trigger", r.stderr)
site2.sql("ALTER EVENT TRIGGER mailfort_audit_guard_detach DISABLE; "
          "ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_2025_03; "
          "ALTER EVENT TRIGGER mailfort_audit_guard_detach ENABLE")
tap.eq(site2.scalar("SELECT count(*) FROM audit.events"), "6", "the detached month is gone from the views")
r = site2.ctl("audit", "verify")
out = r.stdout + r.stderr
tap.ok(r.returncode == 1 and "seq 4 to 7: missing" in out and "audit_events_2025_03" in out,
       "superuser: trigger disabled + DETACH -> verify fails naming seq 4 to 7 and the partition", out)
tap.done()
