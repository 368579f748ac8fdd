#!/usr/bin/env python3
"""mailfort-milter started as a daemon, the way an init script starts it.

Without -f the command returns once the milter has left the terminal; the
pid file names the supervisor (written whole: no temp file is left), the
milter itself runs as [milter] user with the socket handed to that user,
answers a milter option negotiation on it, and SIGTERM to the pid in the
pid file stops it all.
"""
import atexit
import errno
import grp
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, tap  # noqa: E402
from milterlib import milter_binary  # noqa: E402
from stack import MAIL_USER, mail_user  # noqa: E402

uid, gid = mail_user()
work = os.path.join(TMP, "milter-daemon")
os.makedirs(work, exist_ok=True)
os.chmod(work, 0o1777)
sock = os.path.join(work, "md.sock")
pid_file = os.path.join(work, "md.pid")
site = Site("milter-daemon", extra={"milter": {"socket": "unix:" + sock, "user": MAIL_USER,
                                               "pid_file": pid_file, "tmp_dir": work}})


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def real_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def cleanup():
    """Whatever happens above, no milter is left running."""
    try:
        with open(pid_file) as f:
            p = int(f.read().strip())
        for k in children(p):
            os.kill(k, signal.SIGKILL)
        os.kill(p, signal.SIGKILL)
    except (OSError, ValueError):
        pass


atexit.register(cleanup)
r = subprocess.run([milter_binary(), "-c", site.conf], capture_output=True, text=True, timeout=30)
tap.eq(r.returncode, 0, "without -f the command returns once the milter is detached")
end = time.time() + 20
while time.time() < end and not (os.path.exists(pid_file) and os.path.exists(sock)):
    time.sleep(0.1)
pid = 0
try:
    with open(pid_file) as f:
        pid = int(f.read().strip())
except (OSError, ValueError):
    pass
tap.ok(pid > 0 and alive(pid), "the pid file names the running supervisor", pid)
tap.eq([n for n in os.listdir(work) if n.endswith(".tmp")], [], "no temp file is left beside it")
kids = []
end = time.time() + 10
while time.time() < end and not kids:
    kids = children(pid) if pid else []
    time.sleep(0.1)
tap.ok(len(kids) == 1 and real_uid(kids[0]) == uid,
       "the milter runs as [milter] user %s" % MAIL_USER, [real_uid(k) for k in kids])
st = os.stat(sock) if os.path.exists(sock) else None
tap.ok(st is not None and st.st_uid == uid, "its socket belongs to that user",
       st.st_uid if st else None)
postfix_gid = grp.getgrnam("postfix").gr_gid
tap.ok(st is not None and st.st_gid == postfix_gid and st.st_mode & 0o777 == 0o660,
       "and to group postfix, mode 0660 ([milter] socket_group, socket_mode)",
       (st.st_gid, oct(st.st_mode)) if st else None)


def connect_as_nobody():
    """errno of a connect to the socket by a local user outside group postfix (0: it worked)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock)
        except OSError as e:
            code = e.errno or 255
        os._exit(code)
    _p, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


tap.eq(connect_as_nobody(), errno.EACCES,
       "a local user outside group postfix cannot connect to the socket (EACCES)")

reply = b""
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
        while len(reply) < 5:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
except OSError as e:
    tap.diag(repr(e))
tap.ok(reply[4:5] == b"O", "it answers a milter option negotiation", reply[:16])

if pid:
    os.kill(pid, signal.SIGTERM)
end = time.time() + 20
while time.time() < end and (alive(pid) or any(alive(k) for k in kids)):
    time.sleep(0.1)
tap.ok(pid and not alive(pid) and not any(alive(k) for k in kids),
       "SIGTERM to the pid in the pid file stops the supervisor and the milter")
tap.done()
