"""mailfort test harness: TAP output, the test PostgreSQL, config files, processes.

Integration tests are executable scripts under tests/integration/ that import
this module (sys.path gets tests/harness from MF_SRC).  scripts/test starts
PostgreSQL once and passes its location in the environment:

  MF_SRC        source tree            MF_BUILD      build tree (make done)
  MF_TEST_TMP   this test's scratch    MF_TEST_RUN   the whole run's directory
  MF_TEST_PGHOST, MF_TEST_PGPORT, MF_TEST_PGUSER   the test PostgreSQL

Services a test starts (Dovecot, Postfix, daemons) are registered with
Processes, which stops them when the test ends, also when it fails.
"""

import atexit
import grp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

SRC = os.environ.get("MF_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("MF_BUILD", os.path.join(SRC, "build"))
TMP = os.environ.get("MF_TEST_TMP") or os.path.join("/tmp", "mailfort-test-%d" % os.getpid())
RUN = os.environ.get("MF_TEST_RUN", TMP)
os.makedirs(TMP, exist_ok=True)


# ---------------------------------------------------------------- TAP
class Tap:
    """Print TAP lines; done() prints the plan and exits 1 if any check failed."""

    def __init__(self):
        self.count = 0
        self.failed = 0

    def ok(self, cond, what, detail=None):
        self.count += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.count, what), flush=True)
        if not cond:
            self.failed += 1
            if detail is not None:
                for line in str(detail).splitlines()[-30:]:
                    print("#   " + line, flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, "got:  %r\nwant: %r" % (got, want))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.count, flush=True)
        sys.exit(1 if self.failed else 0)


tap = Tap()


_ports_given = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A port on 127.0.0.1 nobody listens on, for a service a test starts.

    Picked below the kernel's ephemeral range: a port the kernel hands out
    (bind to port 0) can be taken by any outgoing connection before the
    service binds it, which happens under load (a benchmark's thousands of
    SMTP connections).  Ports already given out in this process are not
    given again."""
    lo, hi = 20000, _ephemeral_range()[0]
    if hi - lo >= 1000:
        for _ in range(200):
            port = random.randrange(lo, hi)
            if port in _ports_given:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _ports_given.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _ports_given.add(port)
    return port


def wait_port(port, timeout=20.0, host="127.0.0.1"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def build_path(*parts):
    return os.path.join(BUILD, *parts)


def src_path(*parts):
    return os.path.join(SRC, *parts)


def mailfortctl_path():
    return build_path("tools", "mailfortctl")


# ---------------------------------------------------------------- processes
class Processes:
    """Start long-running services in their own process group; stop them at exit."""

    def __init__(self):
        self.procs = []
        self.stoppers = []
        atexit.register(self.stop_all)

    def start(self, argv, name, env=None, log=None, cwd=None):
        logf = open(log or os.path.join(TMP, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
        self._record(name, p.pid)
        self.procs.append((name, p))
        return p

    def on_exit(self, fn):
        """Run fn() at exit (e.g. 'doveadm stop'), before the groups are killed."""
        self.stoppers.append(fn)

    def _record(self, name, pgid):
        d = os.path.join(RUN, "mf-kill")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "%s-%d.pid" % (name, pgid)), "w") as f:
            f.write(str(pgid))

    def stop_all(self):
        for fn in reversed(self.stoppers):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - best effort at exit
                print("# stop: %s" % e)
        self.stoppers = []
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=10)
                except Exception:  # noqa: BLE001
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
        self.procs = []


procs = Processes()


def run(argv, check=False, input=None, env=None, timeout=120):
    """Run a command; returns CompletedProcess with text stdout/stderr."""
    r = subprocess.run(argv, input=input, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


# ---------------------------------------------------------------- PostgreSQL
class Postgres:
    """The run's PostgreSQL (started by scripts/test, or MF_TEST_PG* from outside)."""

    def __init__(self):
        self.host = os.environ.get("MF_TEST_PGHOST")
        self.port = os.environ.get("MF_TEST_PGPORT", "5432")
        self.user = os.environ.get("MF_TEST_PGUSER", "postgres")
        if not self.host:
            raise RuntimeError("MF_TEST_PGHOST is not set: run through scripts/test")

    def conninfo(self, dbname, user=None, **extra):
        parts = ["host=%s" % self.host, "port=%s" % self.port, "dbname=%s" % dbname,
                 "user=%s" % (user or self.user)]
        parts += ["%s=%s" % kv for kv in extra.items()]
        return " ".join(parts)

    def psql(self, sql, dbname="postgres", user=None, check=True, params=None):
        """Run SQL; returns rows as lists of strings (unaligned, tab-separated).

        params become psql variables (:'name' in sql), so values are quoted by psql."""
        argv = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", user or self.user, "-d", dbname]
        for k, v in (params or {}).items():
            argv += ["-v", "%s=%s" % (k, v)]
        r = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr.strip())
        if not check:
            return r
        return [line.split("\t") for line in r.stdout.splitlines() if line != ""]

    def scalar(self, sql, dbname="postgres", user=None, params=None):
        rows = self.psql(sql, dbname, user, params=params)
        return rows[0][0] if rows else None

    def create_database(self, name):
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE); CREATE DATABASE "%s";' % (name, name))
        return name


# ---------------------------------------------------------------- configuration
def write_config(path, sections):
    """Write a mailfort.conf from {section: {key: value}}; returns path.

    Written to a temporary file and renamed, so a program that reads it at
    the same moment sees the old file or the new one, never half of one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for section, keys in sections.items():
            f.write("[%s]\n" % section)
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
    return path


def _mail_group():
    """Name of the unprivileged mail user's group (created on first use)."""
    from stack import mail_user  # stack imports this module
    return grp.getgrgid(mail_user()[1]).gr_name


class Site:
    """A complete mailfort site for one test: database (migrated), keys, spool, config.

    site = Site("pam")   -> site.conf (path), site.db (name), site.keys, site.spool
    Extra sections/keys: Site("x", extra={"pam": {"max_failures": 3}}).
    The event receiver (mailfort-spoold) is started unless spoold=False.
    """

    def __init__(self, name, extra=None, migrate=True, keys=True, spoold=True):
        self.pg = Postgres()
        self.name = name
        self.dir = os.path.join(TMP, "site-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.keys = os.path.join(self.dir, "keys")
        # Only the spool's owner (mailfort-spoold and mailfort-auditd, root
        # here) may enter the spool; producers hand events to spoold
        # through its socket, which the mail user's group may connect to.
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool)
        os.chmod(self.spool, 0o700)
        self.socket = os.path.join(self.dir, "spool.sock")
        self.spoold = None
        self.db = self.pg.create_database("mf_" + name.replace("-", "_"))
        self.sections = {
            "database": {"conninfo": self.pg.conninfo(self.db), "connect_timeout": 3},
            "keys": {"dir": self.keys},
            "spool": {"dir": self.spool},
        }
        if spoold:
            self.sections["spool"]["socket"] = self.socket
            self.sections["spoold"] = {"user": "root", "group": _mail_group()}
        for sec, kv in (extra or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.conf = os.path.join(self.dir, "mailfort.conf")
        self.write()
        if migrate:
            self.ctl("db", "migrate", check=True)
        if keys:
            self.ctl("keys", "init", check=True)
        if spoold:  # only benchmarks that fill the spool themselves go without
            self.start_spoold()

    def start_spoold(self):
        """Start the event receiver (mailfort-spoold) and wait for its socket."""
        if self.spoold is not None and self.spoold.poll() is None:
            return self.spoold
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # left by a receiver that was killed
        self.spoold = procs.start([build_path("auditd", "mailfort-spoold"), "-c", self.conf, "-f"],
                                  "spoold-" + self.name)
        for _ in range(200):
            if os.path.exists(self.socket) or self.spoold.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.exists(self.socket):
            raise RuntimeError("mailfort-spoold did not start (see spoold-%s.log)" % self.name)
        return self.spoold

    def stop_spoold(self):
        """Stop the receiver: producers then find no one to hand events to."""
        if self.spoold is not None and self.spoold.poll() is None:
            self.spoold.send_signal(signal.SIGTERM)
            self.spoold.wait(timeout=30)
        self.spoold = None
        for _ in range(100):
            if not os.path.exists(self.socket):
                break
            time.sleep(0.02)

    def write(self):
        write_config(self.conf, self.sections)
        os.chmod(self.conf, 0o644)

    def set(self, section, key, value):
        self.sections.setdefault(section, {})[key] = value
        self.write()

    def ctl(self, *args, check=False, input=None, env=None):
        return run([mailfortctl_path(), "--config", self.conf] + [str(a) for a in args],
                   check=check, input=input, env=env)

    def sql(self, sql, params=None):
        return self.pg.psql(sql, self.db, params=params)

    def scalar(self, sql, params=None):
        return self.pg.scalar(sql, self.db, params=params)
