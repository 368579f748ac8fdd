"""Helpers for the audit trail's integration tests (tests/integration/audit-*.py).

    from auditlib import Auditd, audit_dovecot, events, spool_event

Auditd(site) runs the freshly built mailfort-auditd against a Site: once
(ship what is spooled, then exit) or as a daemon that the test stops with
SIGTERM or kills with SIGKILL.  audit_dovecot() starts a Dovecot with
mailfort_audit (+ its imap part) loaded and the client's IMAP ID passed
through to the mail process.  events() reads the shipped events back as
dicts (the event JSON plus node and seq).
"""

import imaplib
import json
import os
import signal
import socket
import subprocess
import time

from mailfort import BUILD, procs, run
from stack import Dovecot

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
imaplib.Commands.setdefault("MOVE", ("SELECTED",))


def auditd_path():
    return os.path.join(BUILD, "auditd", "mailfort-auditd")


class Auditd:
    def __init__(self, site, name="auditd"):
        self.site = site
        self.name = name
        self.proc = None
        # auditd reads the spool as its owner, the user mailfort-spoold
        # writes it as (root here); producers cannot touch it.
        site.sections.setdefault("auditd", {}).setdefault("user", "root")
        site.sections["auditd"].setdefault("poll_interval_ms", 50)
        site.sections["auditd"].setdefault("retry_interval", "1s")
        site.write()

    def once(self, check=True):
        r = run([auditd_path(), "-c", self.site.conf, "--once"], timeout=300)
        if check and r.returncode != 0:
            raise RuntimeError("mailfort-auditd --once failed (%d): %s%s"
                               % (r.returncode, r.stdout, r.stderr))
        return r

    def start(self, verbose=False):
        argv = [auditd_path(), "-c", self.site.conf, "-f"] + (["-v"] if verbose else [])
        self.proc = procs.start(argv, self.name)
        return self.proc

    def stop(self, timeout=60):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def wait_seq(self, seq, node=None, timeout=60):
        """Wait until the chain head of node reaches seq; returns the head."""
        end = time.time() + timeout
        head = 0
        while time.time() < end:
            head = int(self.site.scalar("SELECT coalesce(max(last_seq), 0) FROM mailfort.audit_heads") or 0)
            if head >= seq:
                return head
            time.sleep(0.1)
        return head


def audit_dovecot(name, site, users=None, extra="", plugin_settings=None):
    return Dovecot(name, site=site, plugins=["notify", "mailfort_audit"],
                   imap_plugins=["imap_mailfort_audit"],
                   users=users or {"alice": "alicepw", "bob": "bobpw"},
                   plugin_settings=plugin_settings,
                   extra="imap_id_retain = yes\n" + extra,
                   userdb_extra="mailfort_audit_client_id=%{client_id}")


def events(site, where="true", params=None):
    rows = site.sql("SELECT node, seq, payload FROM mailfort.audit_events WHERE %s ORDER BY node, seq"
                    % where, params=params)
    out = []
    for node, seq, payload in rows:
        ev = json.loads(payload)
        ev["_node"] = node
        ev["_seq"] = int(seq)
        out.append(ev)
    return out


def spool_append(site, lines):
    """Append raw records (one string each) to the site's spool with the C writer,
    as only the spool's owner can: no "peer", any time, malformed records too.
    Producers hand events in with submit_events()."""
    data = "".join(l + "\n" for l in lines)
    r = run([os.path.join(BUILD, "auditd", "audit-spool-append"), site.spool], input=data)
    if r.returncode != 0:
        raise RuntimeError("audit-spool-append: %s" % r.stderr)


def submit_events(site, lines):
    """Hand events to the site's mailfort-spoold as the auth worker does (root);
    each must be spooled."""
    for line in lines:
        ok, why = submit(site.socket, line)
        if not ok:
            raise RuntimeError("mailfort-spoold refused %s: %s" % (line[:80], why))


def auth_event(user, ip, result="fail", reason="bad_password", node="n1", service="imap", when=None):
    """A PAM-style auth event as pam_mailfort writes it."""
    t = when or time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return json.dumps({"v": 1, "type": "auth", "time": t, "node": node, "pid": 1,
                       "user": user, "service": service, "ip": ip, "mode": "append",
                       "result": result, "reason": reason})


def message(subject, body="hello\r\n", msgid=None):
    msgid = msgid or "<%s@example.test>" % subject.replace(" ", ".")
    return ("From: Sender <sender@example.test>\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: %s\r\n\r\n%s" % (subject, msgid, body)).encode()


def as_user(uid, gid, fn):
    """Run fn() in a child process with the given uid and gid (no other
    groups) and return what it returned (anything json can carry)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = {"ok": fn()}
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(data.decode() or '{"error": "child died"}')
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["ok"]


def submit(socket_path, text, timeout=5.0):
    """Hand one event to mailfort-spoold as the calling process: returns
    (True, "") once it is spooled, or (False, reason) when it was refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(socket_path)
        s.send(text.encode() if isinstance(text, str) else text)
        ans = s.recv(4096)
    finally:
        s.close()
    return ans[:1] == b"K", ans[1:].decode(errors="replace")
