#!/usr/bin/env python3
"""foundation-ctl: mailfortctl's db and keys commands, and its error handling.

db migrate/status on a fresh database, concurrent migrates, an edited
migration, a failing migration (rolled back, reported with its file and line),
keys init/status (modes, sizes, refusal without --force, unsafe modes),
--help everywhere, one-line errors with exit 1, usage errors with exit 2.
"""
import os
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import (Site, free_port, mailfortctl_path, procs, run, src_path, tap,  # noqa: E402
                      write_config)

CTL = mailfortctl_path()


def one_line_error(r, code=1):
    lines = r.stderr.strip().splitlines()
    return r.returncode == code and len(lines) == 1 and lines[0].startswith("mailfortctl: ")


# ------------------------------------------------------------ help and usage
r = run([CTL, "--help"])
tap.ok(r.returncode == 0 and "db" in r.stdout and "keys" in r.stdout, "mailfortctl --help", r.stderr)
for argv in (["db", "--help"], ["db", "migrate", "--help"], ["db", "status", "--help"],
             ["keys", "--help"], ["keys", "init", "--help"], ["keys", "status", "--help"]):
    r = run([CTL] + argv)
    tap.ok(r.returncode == 0 and r.stdout.startswith("usage: mailfortctl " + argv[0]),
           "mailfortctl %s prints its usage and exits 0" % " ".join(argv), r.stdout + r.stderr)
r = run([CTL, "frobnicate"])
tap.ok(one_line_error(r, 2) and "frobnicate" in r.stderr, "an unknown command group exits 2",
       r.stderr)
r = run([CTL, "db", "frobnicate"])
tap.ok(one_line_error(r, 2) and "frobnicate" in r.stderr, "an unknown db command exits 2", r.stderr)
r = run([CTL, "keys", "init", "--forse"])
tap.ok(one_line_error(r, 2) and "--forse" in r.stderr, "an unknown keys option exits 2", r.stderr)
r = run([CTL, "db"])
tap.eq(r.returncode, 2, "a group without a command exits 2")

missing = os.path.join(os.environ.get("MF_TEST_TMP", "/tmp"), "no-such-dir", "mailfort.conf")
for argv in (["db", "status"], ["db", "migrate"], ["keys", "init"], ["keys", "status"]):
    r = run([CTL, "--config", missing] + argv)
    tap.ok(one_line_error(r) and missing in r.stderr,
           "%s with a missing --config file: one line naming it, exit 1" % " ".join(argv),
           "exit %d: %s" % (r.returncode, r.stderr))

# The annotated example configuration is accepted as it is shipped.
example = src_path("examples", "mailfort.conf")
r = run([CTL, "--config", example, "keys", "status"])
tap.ok("mailfort.conf" not in r.stderr and r.stderr.count("\n") <= 1,
       "examples/mailfort.conf loads without a configuration error", r.stderr)

# ------------------------------------------------------------ db status / migrate
site = Site("fctl", migrate=False, keys=False)
# trust authentication ignores the password: it only has to stay out of the output
site.set("database", "conninfo", site.pg.conninfo(site.db, password="Sekr1tPw"))
r = site.ctl("db", "status")
# The migrations compiled into this mailfortctl (the source tree may already
# hold files added after the build).
files = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("  pending ")]
tap.ok(r.returncode == 0 and len(files) > 0 and "0 applied, %d pending" % len(files) in r.stdout,
       "db status on an empty database: everything pending", r.stdout + r.stderr)
tap.ok("PostgreSQL 15" in r.stdout or "PostgreSQL 1" in r.stdout, "db status shows the server version",
       r.stdout)
tap.ok("dbname=%s" % site.db in r.stdout and "port=%s" % site.pg.port in r.stdout,
       "db status shows where it connects", r.stdout)
tap.ok("Sekr1tPw" not in r.stdout + r.stderr, "db status never shows the password", r.stdout)

r = site.ctl("db", "migrate")
tap.ok(r.returncode == 0 and all(("applied " + f) in r.stdout for f in files),
       "db migrate applies every file", r.stdout + r.stderr)
r = site.ctl("db", "migrate")
tap.ok(r.returncode == 0 and "nothing to apply" in r.stdout, "a second db migrate has nothing to apply",
       r.stdout + r.stderr)
r = site.ctl("db", "status")
tap.ok(r.returncode == 0 and "%d applied, 0 pending" % len(files) in r.stdout
       and all(f in r.stdout for f in files), "db status lists every migration as applied",
       r.stdout + r.stderr)

# An applied file that changed: migrate refuses and applies nothing; status flags it.
site.sql("UPDATE mailfort.schema_migrations SET checksum = repeat('0', 64) WHERE name = '%s'" % files[1])
site.sql("DELETE FROM mailfort.schema_migrations WHERE name = '%s'" % files[-1])
r = site.ctl("db", "migrate")
tap.ok(one_line_error(r) and files[1] in r.stderr and "changed" in r.stderr,
       "db migrate refuses when an applied migration changed", r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.schema_migrations WHERE name = '%s'" % files[-1]),
       "0", "nothing is applied after that refusal")
r = site.ctl("db", "status")
tap.ok(r.returncode == 1 and "CHANGED" in r.stdout and files[1] in r.stdout,
       "db status flags the changed migration and exits 1", r.stdout + r.stderr)

# A migration unknown to this binary only warns.
site2 = Site("fctl-unknown", migrate=True, keys=False)
site2.sql("INSERT INTO mailfort.schema_migrations (name, checksum) VALUES ('9999_future.sql', repeat('a', 64))")
r = site2.ctl("db", "migrate")
tap.ok(r.returncode == 0 and "9999_future.sql" in r.stderr and "warning" in r.stderr,
       "a migration applied by a newer mailfortctl gives a warning", r.stdout + r.stderr)
r = site2.ctl("db", "status")
tap.ok(r.returncode == 0 and "unknown" in r.stdout and "9999_future.sql" in r.stdout,
       "db status lists it as unknown", r.stdout)
ahead = site2.scalar("SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', "
                     "'YYYY-MM')")
tap.ok("monthly partitions up to %s" % ahead in r.stdout and "WARNING" not in r.stdout,
       "db status shows the audit partitions made ahead", r.stdout)
for m in (3, 2, 1):
    site2.sql("SELECT format('ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.audit_events_%%s',"
              " to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '%d months', 'YYYY_MM'))"
              " \\gexec" % m)
r = site2.ctl("db", "status")
tap.ok(r.returncode == 0 and "WARNING" in r.stdout and "next month" in r.stdout,
       "db status warns when next month has no audit partition", r.stdout)

# A failing migration is rolled back and reported with its file and line.
site3 = Site("fctl-fail", migrate=False, keys=False)
site3.sql("CREATE SCHEMA audit")
r = site3.ctl("db", "migrate")
want_line = [n for n, text in enumerate(open(src_path("sql", "migrations", files[0])), 1)
             if text.startswith("CREATE SCHEMA audit")][0]
tap.ok(one_line_error(r) and files[0] in r.stderr and 'schema "audit" already exists' in r.stderr,
       "a failing migration is reported with its file and the server's reason", r.stderr)
tap.ok("at line %d:" % want_line in r.stderr, "... and the line of the failing statement (%d)" % want_line,
       r.stderr)
tap.eq(site3.scalar("SELECT to_regnamespace('mailfort') IS NULL"), "t",
       "the failed migration was rolled back")

# A database administrator who is not a superuser (CREATEROLE, owns the
# database) can migrate: the first migration makes it a member of
# mailfort_owner, and everything still ends up owned by mailfort_owner.
dba = "t_dba_%d" % os.getpid()
site5 = Site("fctl-dba", migrate=False, keys=False)
site5.pg.psql('DROP ROLE IF EXISTS "%s"; CREATE ROLE "%s" LOGIN CREATEROLE; '
              'ALTER DATABASE "%s" OWNER TO "%s"' % (dba, dba, site5.db, dba))
procs.on_exit(lambda: site5.pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE); DROP ROLE IF EXISTS "%s"'
                                    % (site5.db, dba), check=False))
site5.set("database", "conninfo", site5.pg.conninfo(site5.db, user=dba))
r = site5.ctl("db", "migrate")
tap.ok(r.returncode == 0 and "%d migrations applied" % len(files) in r.stdout,
       "a non-superuser with CREATEROLE that owns the database can migrate", r.stdout + r.stderr)
tap.eq(site5.scalar("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'mailfort' AND pg_get_userbyid(c.relowner) <> 'mailfort_owner'"),
       "0", "its migration still leaves everything owned by mailfort_owner")

# Two concurrent migrates apply each file once.
site4 = Site("fctl-race", migrate=False, keys=False)
argv = [CTL, "--config", site4.conf, "db", "migrate"]
ps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for _ in range(3)]
outs = [p.communicate(timeout=120) + (p.returncode,) for p in ps]
tap.ok(all(o[2] == 0 for o in outs), "three concurrent migrates all succeed",
       "\n".join("%d: %s%s" % (o[2], o[0], o[1]) for o in outs))
applied = sum(o[0].count("applied 0") for o in outs)
tap.eq(applied, len(files), "between them, each file was applied exactly once")
tap.eq(site4.scalar("SELECT count(*) FROM mailfort.schema_migrations"), str(len(files)),
       "each file is recorded once")

# First migrates racing on a fresh cluster (the roles do not exist yet),
# as when a site's nodes are set up at once: every one must succeed.
fresh_dir = os.path.join(os.environ.get("MF_TEST_TMP", "/tmp"), "fresh-cluster")
shutil.rmtree(fresh_dir, ignore_errors=True)
os.makedirs(fresh_dir)
env = dict(l.split("=", 1) for l in run([src_path("tests", "harness", "pg.sh"), "start", fresh_dir],
                                        check=True).stdout.split())
procs.on_exit(lambda: run([src_path("tests", "harness", "pg.sh"), "stop", fresh_dir]))
fresh = []
for i in range(4):
    run(["psql", "-X", "-q", "-h", env["MF_TEST_PGHOST"], "-p", env["MF_TEST_PGPORT"], "-U", "postgres",
         "-c", "CREATE DATABASE race%d" % i], check=True)
    conf = os.path.join(fresh_dir, "race%d.conf" % i)
    write_config(conf, {"database": {"conninfo": "host=%s port=%s dbname=race%d user=postgres" % (
        env["MF_TEST_PGHOST"], env["MF_TEST_PGPORT"], i)}})
    fresh.append(conf)
ps = [subprocess.Popen([CTL, "--config", c, "db", "migrate"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True) for c in fresh]
outs = [p.communicate(timeout=120) + (p.returncode,) for p in ps]
tap.ok(all(o[2] == 0 for o in outs), "four first migrates on a fresh cluster, at once, all succeed",
       "\n".join("%d: %s" % (o[2], o[1]) for o in outs))
run([src_path("tests", "harness", "pg.sh"), "stop", fresh_dir])

# The database is unreachable: one line, exit 1.
dead = Site("fctl-dead", migrate=False, keys=False)
dead.set("database", "conninfo", "host=127.0.0.1 port=%d dbname=x user=postgres" % free_port())
for argv in (["db", "status"], ["db", "migrate"]):
    r = dead.ctl(*argv)
    tap.ok(one_line_error(r), "%s with the database down: one-line error, exit 1" % " ".join(argv),
           "exit %d: %s" % (r.returncode, r.stderr))

# ------------------------------------------------------------ keys
SIZES = {"master.key": 32, "totp.key": 32, "hash.key": 32, "spam.key": 32, "mail-mac.key": 32,
         "audit-sign.key": 64, "audit-sign.pub": 32}
keydir = os.path.join(site.dir, "etc", "mailfort", "keys")
site.set("keys", "dir", keydir)
r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and keydir in r.stderr, "keys status before init: one line, exit 1",
       r.stdout + r.stderr)
r = site.ctl("keys", "init")
tap.ok(r.returncode == 0, "keys init creates the keys (and missing parent directories)",
       r.stdout + r.stderr)
tap.eq(stat.S_IMODE(os.stat(keydir).st_mode), 0o700, "the key directory is 0700")
modes = {f: stat.S_IMODE(os.stat(os.path.join(keydir, f)).st_mode) for f in SIZES}
tap.eq(modes, {f: (0o644 if f.endswith(".pub") else 0o600) for f in SIZES},
       "secret keys are 0600, the public key 0644")
tap.eq({f: os.path.getsize(os.path.join(keydir, f)) for f in SIZES}, SIZES, "every key has its size")
before = {f: open(os.path.join(keydir, f), "rb").read() for f in SIZES}
tap.eq(before["audit-sign.key"][32:], before["audit-sign.pub"],
       "audit-sign.pub is the public half of audit-sign.key")
tap.ok(len({before[f] for f in ("master.key", "totp.key", "hash.key", "spam.key",
                                 "mail-mac.key")}) == 5,
       "the symmetric keys are distinct")
tap.eq(sorted(os.listdir(keydir)), sorted(SIZES), "nothing else (no temporary file) in the key dir")

r = site.ctl("keys", "init")
tap.ok(one_line_error(r) and "master.key" in r.stderr and "--force" in r.stderr,
       "a second keys init refuses, naming the file", r.stderr)
tap.eq({f: open(os.path.join(keydir, f), "rb").read() for f in SIZES}, before,
       "the refused keys init changed nothing")
os.unlink(os.path.join(keydir, "master.key"))
r = site.ctl("keys", "init")
tap.ok(one_line_error(r) and "totp.key" in r.stderr,
       "keys init refuses while any key exists, and creates none", r.stderr)
tap.ok(not os.path.exists(os.path.join(keydir, "master.key")), "no key was created by the refused run")

r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and "missing" in r.stdout, "keys status reports a missing key, exit 1",
       r.stdout + r.stderr)
r = site.ctl("keys", "init", "--force")
tap.ok(r.returncode == 0, "keys init --force replaces the keys", r.stdout + r.stderr)
after = {f: open(os.path.join(keydir, f), "rb").read() for f in SIZES}
tap.ok(all(after[f] != before[f] for f in ("totp.key", "hash.key", "audit-sign.key")),
       "--force wrote new keys")
r = site.ctl("keys", "status")
tap.ok(r.returncode == 0 and r.stdout.count(" ok") == 8, "keys status: directory and seven keys ok",
       r.stdout + r.stderr)
# a site made before mail-mac.key existed adds it, and only it
kept = {f: open(os.path.join(keydir, f), "rb").read() for f in SIZES}
os.unlink(os.path.join(keydir, "mail-mac.key"))
r = site.ctl("keys", "init", "--missing")
now = {f: open(os.path.join(keydir, f), "rb").read() for f in SIZES}
tap.ok(r.returncode == 0 and now["mail-mac.key"] != kept["mail-mac.key"]
       and all(now[f] == kept[f] for f in SIZES if f != "mail-mac.key"),
       "keys init --missing makes the missing mail-mac.key and keeps every other key",
       r.stdout + r.stderr)
r = site.ctl("keys", "status")
tap.ok(r.returncode == 0, "and keys status is content again", r.stdout + r.stderr)

pub = os.path.join(keydir, "audit-sign.pub")
good_pub = open(pub, "rb").read()
with open(pub, "wb") as f:
    f.write(bytes(32))
r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and "does not match audit-sign.key" in r.stdout,
       "keys status flags an audit-sign.pub that is not the signing key's", r.stdout + r.stderr)
with open(pub, "wb") as f:
    f.write(good_pub)

os.chmod(os.path.join(keydir, "totp.key"), 0o640)
r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and "UNSAFE" in r.stdout and "totp.key" in r.stdout,
       "keys status flags a secret key readable by its group", r.stdout + r.stderr)
os.chmod(os.path.join(keydir, "totp.key"), 0o600)
os.chmod(keydir, 0o755)
r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and "UNSAFE" in r.stdout, "keys status flags a listable key directory",
       r.stdout + r.stderr)
shutil.rmtree(keydir)

# keys init into an existing directory with a loose mode tightens it.
os.makedirs(keydir, mode=0o755)
os.chmod(keydir, 0o755)
r = site.ctl("keys", "init")
tap.ok(r.returncode == 0 and stat.S_IMODE(os.stat(keydir).st_mode) == 0o700,
       "keys init tightens an existing key directory to 0700", r.stdout + r.stderr)

# A key file that the crypto library refuses to load stays refused by status too.
with open(os.path.join(keydir, "hash.key"), "wb") as f:
    f.write(b"short")
r = site.ctl("keys", "status")
tap.ok(one_line_error(r) and "wrong size" in r.stdout, "keys status flags a key of the wrong size",
       r.stdout + r.stderr)

# quiet mode prints nothing on success
shutil.rmtree(keydir)
r = run([CTL, "--quiet", "--config", site.conf, "keys", "init"])
tap.ok(r.returncode == 0 and r.stdout == "", "--quiet keys init prints nothing", r.stdout + r.stderr)

# ------------------------------------------------------------ help after USER commands
# "--help" where a USER goes prints the usage; it is never taken for a user
# name (totp enroll would create and enrol an account called "--help").
for argv in (["totp", "enroll", "--help"], ["totp", "status", "-h"], ["totp", "enroll", "bob", "--help"],
             ["apppass", "add", "--help"], ["apppass", "list", "--help"],
             ["user", "status", "--help"], ["user", "unlock", "-h"]):
    r = site.ctl(*argv)
    tap.ok(r.returncode == 0 and r.stdout.startswith("usage: mailfortctl " + argv[0]),
           "mailfortctl %s prints its usage and exits 0" % " ".join(argv), r.stdout + r.stderr)
tap.eq(site.scalar("SELECT count(*) FROM mailfort.accounts"), "0", "and creates no account")
for argv in (["totp", "enroll", "--force"], ["apppass", "add", "--label"], ["user", "unlock", "-x"]):
    r = site.ctl(*argv)
    tap.ok(one_line_error(r, 2) and "not a user name" in r.stderr,
           "mailfortctl %s: an option where USER goes is a usage error" % " ".join(argv), r.stderr)

tap.done()
