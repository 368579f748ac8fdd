"""PgBouncer as examples/pgbouncer ships it, in a scratch directory.

    from bouncer import Bouncer
    b = Bouncer(site, os.path.join(TMP, "pgbouncer")).start()
    b.conninfo(), b.conninfo("mailfort_crypt")   # for mailfort.conf

The configuration is examples/pgbouncer/pgbouncer.ini with only what must
differ on a test machine changed: the socket directory and port, the log and
pid files, the paths of pg_hba.conf and userlist.txt (copied from the
examples too), and the target database (the site's, on the test
PostgreSQL).  Pool modes, pool sizes, server_reset_query and
the authentication method (peer over the Unix socket) stay as shipped, so
what is measured or tested is what a site installs.  allow_trust=True
replaces peer with trust for a stack whose clients are not connecting as
their own operating-system user (scripts/demo runs every part as root with
the postgres role).

PgBouncer runs as the postgres user, as Debian's package runs it.
"""

import os
import re
import shutil
import subprocess

from mailfort import SRC, free_port, procs

EXAMPLES = os.path.join(SRC, "examples", "pgbouncer")


class Bouncer:
    def __init__(self, site, directory, allow_trust=False):
        self.site = site
        self.dir = directory
        self.port = free_port()
        self.allow_trust = allow_trust
        self.proc = None
        os.makedirs(directory, exist_ok=True)

    def config_text(self):
        with open(os.path.join(EXAMPLES, "pgbouncer.ini")) as f:
            text = f.read()
        pg = self.site.pg
        # the target: the site's database on the test PostgreSQL
        text = re.sub(r"host=/var/run/postgresql port=5432 dbname=mailfort",
                      "host=%s port=%s dbname=%s" % (pg.host, pg.port, self.site.db), text)
        subst = {
            "listen_port": str(self.port),
            "unix_socket_dir": self.dir,
            "auth_hba_file": os.path.join(self.dir, "pg_hba.conf"),
            "auth_file": os.path.join(self.dir, "userlist.txt"),
            "logfile": os.path.join(self.dir, "pgbouncer.log"),
            "pidfile": os.path.join(self.dir, "pgbouncer.pid"),
        }
        for key, value in subst.items():
            text, n = re.subn(r"^%s = .*$" % key, "%s = %s" % (key, value), text, flags=re.M)
            if n != 1:
                raise RuntimeError("examples/pgbouncer/pgbouncer.ini: no single '%s' line" % key)
        return text

    def start(self, timeout=15):
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as f:
            f.write(self.config_text())
        shutil.copy(os.path.join(EXAMPLES, "userlist.txt"), self.dir)
        with open(os.path.join(EXAMPLES, "pg_hba.conf")) as f:
            hba = f.read()
        if self.allow_trust:
            hba = re.sub(r"\bpeer\b", "trust", hba)
        with open(os.path.join(self.dir, "pg_hba.conf"), "w") as f:
            f.write(hba)
        with open(os.path.join(self.dir, "userlist.txt"), "a") as f:
            f.write('"%s" ""\n' % self.site.pg.user)
        subprocess.run(["chown", "-R", "postgres", self.dir], check=True)
        os.chmod(self.dir, 0o755)
        self.proc = procs.start(["su", "postgres", "-s", "/bin/sh", "-c",
                                 "exec pgbouncer %s/pgbouncer.ini" % self.dir], "pgbouncer")
        sock = os.path.join(self.dir, ".s.PGSQL.%d" % self.port)
        for _ in range(timeout * 10):
            if os.path.exists(sock):
                return self
            if self.proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        raise RuntimeError("pgbouncer did not start: %s" % self.log_text())

    def conninfo(self, dbname="mailfort", user=None):
        return "host=%s port=%d dbname=%s%s" % (self.dir, self.port, dbname,
                                                " user=%s" % user if user else "")

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
