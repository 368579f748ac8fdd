#!/usr/bin/env python3
"""foundation-schema: the shared PostgreSQL schema, its roles and guarantees.

Migrations apply twice and are recorded; every object is owned by
mailfort_owner; the auditor reads only the audit.* views; nobody, not even
the owner or a superuser, can UPDATE, DELETE or TRUNCATE audit rows;
(node, seq) stays unique and chained across partitions; partitions are made
ahead and rows parked in the default partition move when their month is
created; the component roles get exactly their share.
"""
import atexit
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, src_path, tap  # noqa: E402

site = Site("fschema", keys=False)
pg = site.pg
suffix = "%d" % os.getpid()
login_roles = []


def cleanup():
    for r in login_roles:
        pg.psql('DROP ROLE IF EXISTS "%s"' % r, check=False)


atexit.register(cleanup)


def login_role(group):
    """A LOGIN role granted the group role, as a site would create it."""
    name = "t_%s_%s" % (group, suffix)
    pg.psql('DROP ROLE IF EXISTS "%s"; CREATE ROLE "%s" LOGIN IN ROLE %s' % (name, name, group))
    login_roles.append(name)
    return name


def as_role(role, sql):
    """Run sql as role (a real login); returns (ok, stdout+stderr)."""
    r = pg.psql(sql, site.db, user=role, check=False)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def refused(role, sql, what, pattern):
    ok, out = as_role(role, sql)
    tap.ok(not ok and pattern in out, what, out)


# ------------------------------------------------------------ migrations
# The migrations compiled into this mailfortctl, as db status lists them (the
# source tree may already hold files added after the build).
status = site.ctl("db", "status").stdout
files = [line.split()[1] for line in status.splitlines() if line.startswith("  applied ")]
tap.ok(len(files) >= 5 and "0001_roles_schemas.sql" in files and "  pending " not in status,
       "db migrate applied every compiled-in migration", status)
rows = site.sql("SELECT name, checksum FROM mailfort.schema_migrations ORDER BY name COLLATE \"C\"")
tap.eq([r[0] for r in rows], sorted(files), "every migration file is recorded once, in name order")
sums = {f: hashlib.sha256(open(src_path("sql", "migrations", f), "rb").read()).hexdigest()
        for f in files if os.path.exists(src_path("sql", "migrations", f))}
tap.eq({r[0]: r[1] for r in rows if r[0] in sums}, sums,
       "recorded checksums are the SHA-256 of the files")

r = site.ctl("db", "migrate")
tap.ok(r.returncode == 0 and "nothing to apply" in r.stdout, "a second migrate applies nothing",
       r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.schema_migrations"), str(len(files)),
       "a second migrate records nothing new")

# ------------------------------------------------------------ ownership and roles
wrong = site.sql("""
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('mailfort', 'audit') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND pg_get_userbyid(c.relowner) <> 'mailfort_owner'
UNION ALL
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('mailfort', 'audit') AND pg_get_userbyid(p.proowner) <> 'mailfort_owner'
""")
tap.eq(wrong, [], "every table, view and function in mailfort/audit is owned by mailfort_owner")
roles = site.sql("""
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('mailfort_owner', 'mailfort_pam',
 'mailfort_crypt', 'mailfort_auditd', 'mailfort_milter', 'mailfort_admin', 'mailfort_auditor')
ORDER BY rolname""")
tap.eq(roles, [[n, "f"] for n in sorted(["mailfort_owner", "mailfort_pam", "mailfort_crypt",
                                           "mailfort_auditd", "mailfort_milter", "mailfort_admin",
                                           "mailfort_auditor"])],
       "the seven group roles exist and cannot log in")
public_exec = site.sql("""
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'mailfort' AND has_function_privilege('public', p.oid, 'EXECUTE')""")
tap.eq(public_exec, [], "no mailfort function is executable by PUBLIC")

# A second database in the same cluster migrates although the roles exist.
other = Site("fschema-2", migrate=True, keys=False)
tap.eq(other.scalar("SELECT count(*) FROM mailfort.schema_migrations"), str(len(files)),
       "a second database in the same cluster migrates (roles already there)")

# ------------------------------------------------------------ audit rows


def event_sql(node, seq, prev, h, when="now()", typ="auth", user="alice",
              payload='{"v":1,"type":"auth","user":"alice","result":"fail","service":"imap"}'):
    return ("INSERT INTO mailfort.audit_events (node, seq, event_time, type, username, ip, "
            "payload, prev_hash, hash) VALUES ('%s', %d, %s, '%s', '%s', '192.0.2.7', '%s', "
            "'\\x%s', '\\x%s')" % (node, seq, when, typ, user, payload, prev, h))


site.sql(event_sql("mx1", 1, "00", "01", payload='{"v":1,"type":"auth","user":"alice","service":"imap",'
                   '"result":"fail","factor":"totp","locked":true}') + ";" + event_sql("mx1", 2, "01", "02", typ="read",
         payload='{"v":1,"type":"read","user":"alice","mailbox":"INBOX","uid":7}'))
site.sql("""
INSERT INTO mailfort.accounts (username, totp_state, totp_secret)
  VALUES ('alice', 'enrolled', decode(repeat('ab', 60), 'hex'));
INSERT INTO mailfort.audit_checkpoints (node, seq, count, head_hash, signature, signer_key)
  VALUES ('mx1', 2, 2, '\\x02', decode(repeat('00', 64), 'hex'), decode(repeat('00', 32), 'hex'));
INSERT INTO mailfort.alerts (rule, summary, username) VALUES ('failures', '5 failures', 'alice');
INSERT INTO mailfort.mail_verdicts (verdict_time, queue_id, action, score)
  VALUES (now(), 'ABC123', 'reject', 9.5);
""")

# ------------------------------------------------------------ auditor
auditor = login_role("mailfort_auditor")
for view, want in [("events", 2), ("auth_events", 1), ("failed_logins", 1), ("logins", 0),
                   ("message_access", 1), ("mailbox_changes", 0), ("alerts", 1),
                   ("mail_verdicts", 1), ("checkpoints", 1)]:
    ok, out = as_role(auditor, "SELECT count(*) FROM audit.%s" % view)
    tap.ok(ok and out == str(want), "auditor reads audit.%s (%d rows)" % (view, want), out)
ok, out = as_role(auditor, "SELECT mailbox || ':' || uid FROM audit.message_access")
tap.eq(out, "INBOX:7", "audit.message_access exposes the event's mailbox and uid")
ok, out = as_role(auditor, "SELECT service || ':' || result || ':' || factor || ':' || locked "
                  "FROM audit.auth_events")
tap.eq(out, "imap:fail:totp:true", "audit.auth_events exposes service, result, factor, locked")

refused(auditor, event_sql("mx1", 3, "02", "03"), "auditor cannot INSERT audit events",
        "permission denied")
refused(auditor, "UPDATE mailfort.audit_events SET type = 'x'",
        "auditor cannot UPDATE audit events", "permission denied")
refused(auditor, "DELETE FROM mailfort.audit_events", "auditor cannot DELETE audit events",
        "permission denied")
refused(auditor, "TRUNCATE mailfort.audit_events", "auditor cannot TRUNCATE audit events",
        "permission denied")
refused(auditor, "DELETE FROM audit.events", "auditor cannot DELETE through the view",
        "permission denied")
refused(auditor, "INSERT INTO audit.checkpoints (node, seq, count, head_hash, signature, "
        "signer_key) VALUES ('x', 1, 1, '\\x00', '\\x00', '\\x00')",
        "auditor cannot INSERT through a view", "permission denied")
refused(auditor, "SELECT totp_secret FROM mailfort.accounts",
        "auditor cannot read accounts (TOTP secrets)", "permission denied")
refused(auditor, "SELECT count(*) FROM mailfort.mail_keys", "auditor cannot read mail keys",
        "permission denied")
# SET ROLE from a superuser session gives the same answer.
r = pg.psql("SET ROLE mailfort_auditor; SELECT count(*) FROM mailfort.accounts", site.db,
            check=False)
tap.ok(r.returncode != 0 and "permission denied" in r.stderr,
       "SET ROLE mailfort_auditor cannot read accounts either", r.stderr)

# ------------------------------------------------------------ component roles
comp = {g: login_role(g) for g in ["mailfort_pam", "mailfort_crypt", "mailfort_auditd",
                                     "mailfort_milter", "mailfort_admin"]}
for g, role in comp.items():
    refused(role, "UPDATE mailfort.audit_events SET username = 'mallory'",
            "%s cannot UPDATE audit events" % g, "permission denied")
    refused(role, "DELETE FROM mailfort.audit_events", "%s cannot DELETE audit events" % g,
            "permission denied")
for g in ["mailfort_auditd", "mailfort_admin"]:
    refused(comp[g], "DELETE FROM mailfort.audit_checkpoints", "%s cannot DELETE checkpoints" % g,
            "permission denied")
    refused(comp[g], "UPDATE mailfort.audit_heads SET last_seq = 0",
            "%s cannot move a chain head" % g, "permission denied")

ok, out = as_role(comp["mailfort_auditd"], event_sql("mx1", 3, "02", "03"))
tap.ok(ok, "mailfort_auditd appends an event that continues the chain", out)
ok, out = as_role(comp["mailfort_auditd"], "SELECT mailfort.ensure_partitions(1)")
tap.ok(ok, "mailfort_auditd may create partitions (SECURITY DEFINER function)", out)
refused(comp["mailfort_milter"], "SELECT mailfort.ensure_partitions(1)",
        "mailfort_milter may not call ensure_partitions", "permission denied")
refused(comp["mailfort_auditd"], "SELECT count(*) FROM mailfort.accounts",
        "mailfort_auditd cannot read accounts", "permission denied")

ok, out = as_role(comp["mailfort_pam"], "UPDATE mailfort.accounts SET totp_last_step = 100, "
                  "failed_count = 0 WHERE username = 'alice' AND totp_last_step < 100 "
                  "RETURNING username")
tap.ok(ok and out == "alice", "mailfort_pam updates the TOTP step and lockout state", out)
refused(comp["mailfort_pam"], "UPDATE mailfort.accounts SET totp_secret = '\\x00'",
        "mailfort_pam cannot change a TOTP secret", "permission denied")
refused(comp["mailfort_pam"], "INSERT INTO mailfort.app_passwords (account_id, label, hash, "
        "protocols) VALUES (1, 'x', decode(repeat('00', 32), 'hex'), '{imap}')",
        "mailfort_pam cannot create app passwords", "permission denied")
refused(comp["mailfort_pam"], "UPDATE mailfort.accounts SET totp_state = 'none'",
        "mailfort_pam cannot switch an account's second factor off", "permission denied")
refused(comp["mailfort_pam"], "UPDATE mailfort.accounts SET totp_enrolled_at = NULL",
        "mailfort_pam cannot change the enrolment date", "permission denied")
refused(comp["mailfort_pam"], "SELECT wrapped_mail_key FROM mailfort.app_passwords",
        "mailfort_pam cannot read mail keys wrapped under app passwords", "permission denied")
ok, out = as_role(comp["mailfort_pam"], "SELECT count(*) FROM mailfort.app_passwords ap "
                  "JOIN mailfort.accounts a ON a.id = ap.account_id "
                  "WHERE ap.hash = decode(repeat('00', 32), 'hex') "
                  "AND ap.revoked_at IS NULL AND 'imap' = ANY (ap.protocols)")
tap.ok(ok and out == "0", "mailfort_pam still looks app passwords up by hash", out)

ok, out = as_role(comp["mailfort_crypt"], "INSERT INTO mailfort.mail_keys (account_id, "
                  "public_key, wrapped_private, mode) VALUES (1, decode(repeat('11', 32), 'hex'), "
                  "'\\x00', 'server')")
tap.ok(ok, "mailfort_crypt creates a server-mode key", out)
refused(comp["mailfort_crypt"], "INSERT INTO mailfort.mail_keys (account_id, public_key, "
        "wrapped_private, mode) VALUES (1, decode(repeat('22', 32), 'hex'), '\\x00', 'password')",
        "mailfort_crypt cannot create a password-mode key", "row-level security")
refused(comp["mailfort_crypt"], "UPDATE mailfort.mail_keys SET wrapped_private = '\\x01'",
        "mailfort_crypt cannot rewrite a key", "permission denied")
refused(comp["mailfort_crypt"], "SELECT totp_secret FROM mailfort.accounts",
        "mailfort_crypt cannot read TOTP secrets", "permission denied")
ok, out = as_role(comp["mailfort_crypt"], "SELECT a.totp_state, a.totp_digits, count(p.wrapped_mail_key) "
                  "FROM mailfort.accounts a LEFT JOIN mailfort.app_passwords p ON p.account_id = a.id "
                  "AND p.revoked_at IS NULL WHERE a.username = 'alice' GROUP BY 1, 2")
tap.ok(ok and out == "enrolled|6|0".replace("|", "\t"),
       "mailfort_crypt reads the TOTP state and app-password mail key wraps", out)
refused(comp["mailfort_crypt"], "SELECT failed_count FROM mailfort.accounts",
        "mailfort_crypt cannot read lockout state", "permission denied")
ok, out = as_role(comp["mailfort_milter"], "SELECT spam_messages FROM mailfort.spam_totals")
tap.ok(ok and out == "0", "mailfort_milter reads the spam totals", out)
refused(comp["mailfort_milter"], "UPDATE mailfort.spam_totals SET spam_messages = 1",
        "mailfort_milter cannot change spam statistics", "permission denied")

# ------------------------------------------------------------ owner and superuser
for who, prefix in [("superuser", ""), ("mailfort_owner", "SET ROLE mailfort_owner; ")]:
    for what, sql in [("UPDATE", "UPDATE mailfort.audit_events SET type = 'x'"),
                      ("DELETE", "DELETE FROM mailfort.audit_events"),
                      ("TRUNCATE", "TRUNCATE mailfort.audit_events"),
                      ("UPDATE of a checkpoint", "UPDATE mailfort.audit_checkpoints SET count = 9"),
                      ("DELETE of an alert", "DELETE FROM mailfort.alerts"),
                      ("TRUNCATE of verdicts", "TRUNCATE mailfort.mail_verdicts"),
                      ("DELETE of a chain head", "DELETE FROM mailfort.audit_heads")]:
        r = pg.psql(prefix + sql, site.db, check=False)
        tap.ok(r.returncode != 0 and "append-only" in r.stderr,
               "%s: %s refused by the trigger" % (who, what), r.stderr)
part = site.scalar("SELECT tableoid::regclass FROM mailfort.audit_events WHERE seq = 1")
for what, sql in [("DELETE", "DELETE FROM %s" % part), ("TRUNCATE", "TRUNCATE %s" % part),
                  ("TRUNCATE", "TRUNCATE mailfort.audit_events_default")]:
    r = pg.psql(sql, site.db, check=False)
    tap.ok(r.returncode != 0 and "append-only" in r.stderr,
           "superuser: %s directly on partition %s refused" % (what, sql.split()[-1]), r.stderr)
r = pg.psql("SET session_replication_role = replica; DELETE FROM mailfort.audit_events",
            site.db, check=False)
tap.ok(r.returncode != 0 and "append-only" in r.stderr,
       "session_replication_role = replica does not switch the triggers off", r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events"), "3", "all audit rows are still there")

# ------------------------------------------------------------ (node, seq) and the chain
for what, sql, pattern in [
        ("a repeated seq is refused", event_sql("mx1", 3, "03", "04"), "does not follow"),
        ("a repeated seq in another month's partition is refused",
         event_sql("mx1", 2, "01", "02", when="now() + interval '40 days'"), "does not follow"),
        ("a gap in seq is refused", event_sql("mx1", 5, "03", "05"), "does not follow"),
        ("a prev_hash that does not match the head is refused", event_sql("mx1", 4, "ff", "04"),
         "prev_hash"),
        ("a batch with a broken link is refused",
         event_sql("mx1", 4, "03", "04") + ", ('mx1', 5, now(), 'auth', 'alice', NULL, '{}', "
         "'\\xee', '\\x05')", "prev_hash"),
        ("a batch repeating a seq is refused",
         event_sql("mx1", 4, "03", "04") + ", ('mx1', 4, now() + interval '1 second', 'auth', "
         "'alice', NULL, '{}', "
         "'\\x03', '\\x04')", "repeated or missing"),
        ("a payload that is not JSON is refused", event_sql("mx2", 1, "00", "01", payload="{oops"),
         "invalid input syntax for type json")]:
    r = pg.psql(sql, site.db, check=False)
    tap.ok(r.returncode != 0 and pattern in r.stderr, what, r.stderr)
site.sql(event_sql("mx1", 4, "03", "04") + ";" + event_sql("mx2", 7, "00", "71"))
tap.eq(site.sql("SELECT node, last_seq FROM mailfort.audit_heads ORDER BY node"),
       [["mx1", "4"], ["mx2", "7"]], "chain heads follow each node's last seq")

site.sql(event_sql("imap1", 1, "00", "a1", typ="login", payload='{"v":1,"type":"login","user":"alice",'
                   '"service":"imap","mech":"PLAIN","tls":true,"client":"Thunderbird","result":"ok"}')
         + ";" + event_sql("imap1", 2, "a1", "a2", typ="logout", payload='{"v":1,"type":"logout",'
                           '"user":"alice","service":"imap","reason":"logout","duration_ms":1500}'))
ok, out = as_role(auditor, "SELECT string_agg(concat_ws(':', type, client, mech, tls, reason, duration_ms), ' ' "
                  "ORDER BY seq) FROM audit.logins")
tap.eq(out, "login:Thunderbird:PLAIN:t logout:logout:1500",
       "audit.logins exposes client, mechanism, TLS, logout reason and duration")

# ------------------------------------------------------------ partitions
months = site.sql("""
SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i), 'YYYY_MM')
FROM generate_series(0, 3) i""")
have = {r[0] for r in site.sql("""
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'mailfort.audit_events'::regclass""")}
tap.ok(all("audit_events_" + m[0] in have for m in months) and "audit_events_default" in have,
       "partitions exist for this month and 3 ahead, plus a default", sorted(have))
far = "date_trunc('month', now()) + interval '8 months' + interval '3 days'"
site.sql(event_sql("mx1", 5, "04", "05", when=far))
tap.eq(site.scalar("SELECT tableoid::regclass FROM mailfort.audit_events WHERE seq = 5 AND node = 'mx1'"),
       "mailfort.audit_events_default", "an event beyond the partitions lands in the default partition")
tap.eq(site.scalar("SELECT mailfort.ensure_partitions(9)"), "6", "ensure_partitions(9) creates the 6 missing months")
tap.eq(site.scalar("SELECT mailfort.ensure_partitions(9)"), "0", "ensure_partitions is idempotent")
moved = site.scalar("SELECT tableoid::regclass FROM mailfort.audit_events WHERE seq = 5 AND node = 'mx1'")
tap.ok(moved.startswith("mailfort.audit_events_2"), "the parked event moved into its month's partition", moved)
tap.eq(site.scalar("SELECT encode(hash, 'hex') FROM mailfort.audit_events WHERE seq = 5 AND node = 'mx1'"),
       "05", "the moved event is unchanged")
r = pg.psql("DELETE FROM %s" % moved, site.db, check=False)
tap.ok(r.returncode != 0 and "append-only" in r.stderr, "a partition created later is append-only too",
       r.stderr)
site.sql(event_sql("mx1", 6, "05", "06", when="'1999-12-31 23:00+00'"))
tap.eq(site.scalar("SELECT tableoid::regclass FROM mailfort.audit_events WHERE seq = 6 AND node = 'mx1'"),
       "mailfort.audit_events_default", "an event dated before the partitions lands in the default")
r = pg.psql("DELETE FROM mailfort.audit_events_default", site.db, check=False)
tap.ok(r.returncode != 0 and "append-only" in r.stderr,
       "the default partition is append-only again after the move", r.stderr)
r = pg.psql("SELECT mailfort.ensure_partitions(-1)", site.db, check=False)
tap.ok(r.returncode != 0 and "months_ahead" in r.stderr, "ensure_partitions rejects a negative count",
       r.stderr)

tap.done()
