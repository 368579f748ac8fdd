#!/usr/bin/env python3
"""Every audit event reaches PostgreSQL exactly once: across a PostgreSQL
outage and across mailfort-auditd being killed with SIGKILL mid-batch.

Runs its own PostgreSQL (it is stopped and started again here, which must
not disturb other tests).  Part 1: auditd and Dovecot run, PostgreSQL is
killed, IMAP sessions go on (they must not wait for the database), then
PostgreSQL comes back and every session's events arrive once.  Part 2:
200,000 events are spooled, auditd is killed -9 while shipping, restarted,
and every event is stored exactly once with an unbroken, verified chain.
Part 3: SIGTERM drains the spool and writes a final checkpoint.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
import mailfort  # noqa: E402
from mailfort import BUILD, SRC, TMP, Site, tap, procs  # noqa: E402

# ------------------------------------------------------------ our own PostgreSQL
pgdir = os.path.join(TMP, "pg-own")
subprocess.run([os.path.join(SRC, "tests/harness/pg.sh"), "stop", pgdir])
shutil.rmtree(pgdir, ignore_errors=True)
out = subprocess.run([os.path.join(SRC, "tests/harness/pg.sh"), "start", pgdir],
                     capture_output=True, text=True, check=True).stdout
env = dict(line.split("=", 1) for line in out.split())
os.environ["MF_TEST_PGHOST"] = env["MF_TEST_PGHOST"]
os.environ["MF_TEST_PGPORT"] = env["MF_TEST_PGPORT"]
procs.on_exit(lambda: subprocess.run([os.path.join(SRC, "tests/harness/pg.sh"), "stop", pgdir]))
bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
pg_ctl = "/usr/lib/postgresql/%s/bin/pg_ctl" % bindir


def pg(action):
    opts = ("-k '%s/pg' -p %s -c listen_addresses=127.0.0.1 -c fsync=off"
            % (pgdir, env["MF_TEST_PGPORT"]))
    cmd = {"kill": "%s -D '%s/pg/data' -m immediate -w stop" % (pg_ctl, pgdir),
           "start": "%s -D '%s/pg/data' -l '%s/pg/log' -w -t 60 -o \"%s\" start"
                    % (pg_ctl, pgdir, pgdir, opts)}[action]
    return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", cmd],
                          capture_output=True, text=True).returncode


from auditlib import Auditd, audit_dovecot, events, message  # noqa: E402

site = Site("audit-once", extra={"spool": {"node": "n1"},
                                 "auditd": {"alerts": "no", "retry_interval": "1s"}})
auditd = Auditd(site)
auditd.start()
dc = audit_dovecot("eo", site)  # short: Dovecot socket paths are limited
dc.start()
dc.lmtp_deliver("s@example.test", "alice", message("first"))


def session():
    m = dc.imap_login("alice", "alicepw")
    m.select("INBOX")
    m.fetch("1", "(BODY.PEEK[])")
    m.logout()


session()
tap.ok(auditd.wait_seq(5) >= 5, "events of a first session shipped while PostgreSQL is up")

# ------------------------------------------------------------ part 1: PostgreSQL down
tap.eq(pg("kill"), 0, "PostgreSQL killed")
t0 = time.time()
for _ in range(5):
    session()
tap.ok(time.time() - t0 < 15, "5 IMAP sessions completed with the database down (%.1fs)" % (time.time() - t0))
time.sleep(2)
tap.ok(auditd.proc.poll() is None, "auditd keeps running while the database is down")
tap.eq(pg("start"), 0, "PostgreSQL started again")
want = 5 + 5 * 3
tap.eq(auditd.wait_seq(want, timeout=60), want, "all %d events arrived after the outage" % want)
time.sleep(1)
ev = events(site)
tap.eq(len(ev), want, "no event stored twice")
sessions = {}
for e in ev:
    if e.get("session") and e["service"] == "imap":
        sessions.setdefault(e["session"], []).append(e["type"])
tap.eq(sorted(sessions.values()), [["login", "read", "logout"]] * 6,
       "each of the 6 sessions has exactly login, read, logout")
dc.stop()

# ------------------------------------------------------------ part 2: kill -9 mid-batch
N = 200000
auditd.kill9()
base = int(site.scalar("SELECT last_seq FROM mailfort.audit_heads"))
site.set("auditd", "batch_size", 20000)
site.set("auditd", "segment_size", "4M")
r = subprocess.run([os.path.join(BUILD, "auditd", "audit-spool-append"), site.spool, "--generate", str(N)],
                   capture_output=True, text=True)
tap.ok(r.returncode == 0, "spooled %d events" % N, r.stderr)
auditd.start()
deadline = time.time() + 60
seen = base
while time.time() < deadline:
    seen = int(site.scalar("SELECT last_seq FROM mailfort.audit_heads"))
    if seen > base:
        break
    time.sleep(0.02)
auditd.kill9()
mid = int(site.scalar("SELECT last_seq FROM mailfort.audit_heads"))
tap.ok(base < mid < base + N, "auditd killed -9 in the middle (%d of %d shipped)" % (mid - base, N))
auditd.start()
tap.eq(auditd.wait_seq(base + N, timeout=150), base + N, "after the restart every event is stored")
time.sleep(0.5)
rows = site.sql("SELECT count(*), count(DISTINCT seq), count(DISTINCT payload::jsonb->>'message_id') "
                "FILTER (WHERE type = 'read' AND payload::jsonb->>'session' = 'benchsession') "
                "FROM mailfort.audit_events")
tap.eq(rows, [[str(base + N), str(base + N), str(N)]], "each event exactly once (count, seq, message ids)")
pos = site.sql("SELECT last_seq FROM mailfort.auditd_positions")
tap.eq(pos, [[str(base + N)]], "the stored spool position matches the last seq")

# ------------------------------------------------------------ part 3: SIGTERM drains
r = subprocess.run([os.path.join(BUILD, "auditd", "audit-spool-append"), site.spool, "--generate", "5000"],
                   capture_output=True, text=True)
rc = auditd.stop()
tap.eq(rc, 0, "SIGTERM: auditd exits 0")
last = int(site.scalar("SELECT last_seq FROM mailfort.audit_heads"))
tap.eq(last, base + N + 5000, "SIGTERM drained the spool")
tap.eq(site.scalar("SELECT max(seq) FROM mailfort.audit_checkpoints"), str(last),
       "a final checkpoint covers the last event")
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0 and r.stdout.strip().endswith("OK"), "the chain verifies", r.stdout + r.stderr)
segs = [f for f in os.listdir(site.spool) if f.startswith("events.")]
tap.ok(len(segs) <= 2, "shipped spool segments were removed (%d left)" % len(segs))
tap.done()
