"""Helpers for mailfort-milter's integration tests.

    from milterlib import Milter, train_corpus, lua_session, spool_events

Milter(site) runs the freshly built mailfort-milter in the foreground on a
free loopback port (stopped at exit).  train_corpus writes a small labelled
set of generated messages (a Maildir of spam, an mbox of ham) so that tests
never need an external corpus.  lua_session builds a miltertest script for
one message and returns what the milter answered, parsed.
"""

import os
import random
import signal
import subprocess
import time

from mailfort import BUILD, TMP, free_port, procs, run, wait_port

SPAM_WORDS = ["viagra", "casino", "jackpot", "lottery", "winner", "bonus", "pharmacy",
              "discount", "unsubscribe", "cheap", "offer", "prize", "crypto", "investment"]
HAM_WORDS = ["meeting", "agenda", "budget", "minutes", "committee", "draft", "report",
             "review", "ministry", "schedule", "quarterly", "procurement", "memo", "council"]


def spam_message(i, rnd):
    words = " ".join(rnd.choice(SPAM_WORDS) for _ in range(40))
    return ("From: promo%d@deals.example\r\nTo: victim@example.test\r\n"
            "Subject: %s %s\r\nDate: Thu, 26 Nov 2026 10:%02d:00 +0000\r\n"
            "Message-ID: <spam%d@deals.example>\r\n\r\n%s\r\nVisit http://win.deals.example/now\r\n"
            % (i, rnd.choice(SPAM_WORDS), rnd.choice(SPAM_WORDS), i % 60, i, words))


def ham_message(i, rnd):
    words = " ".join(rnd.choice(HAM_WORDS) for _ in range(40))
    return ("From: colleague%d@gov.example\r\nTo: staff@example.test\r\n"
            "Subject: %s %s\r\nDate: Thu, 26 Nov 2026 09:%02d:00 +0000\r\n"
            "Message-ID: <ham%d@gov.example>\r\n\r\n%s\r\nSee https://intranet.gov.example/doc\r\n"
            % (i, rnd.choice(HAM_WORDS), rnd.choice(HAM_WORDS), i % 60, i, words))


def train_corpus(base, n=30, seed=7):
    """Write n spam messages as a Maildir and n ham as an mbox; return (maildir, mbox)."""
    rnd = random.Random(seed)
    maildir = os.path.join(base, "spam-maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    for i in range(n):
        sub = "cur" if i % 2 else "new"
        with open(os.path.join(maildir, sub, "%d.M%d.host:2,S" % (1700000000 + i, i)), "w") as f:
            f.write(spam_message(i, rnd))
    mbox = os.path.join(base, "ham.mbox")
    with open(mbox, "w") as f:
        for i in range(n):
            f.write("From colleague%d@gov.example Thu Nov 26 09:00:00 2026\n" % i)
            f.write(ham_message(i, rnd).replace("\r\n", "\n"))
            f.write("\n")
    return maildir, mbox


def milter_binary():
    return os.path.join(BUILD, "milter", "mailfort-milter")


class Milter:
    """mailfort-milter in the foreground for one site ([milter] socket set here)."""

    def __init__(self, site, name="milter", unix=False):
        self.site = site
        self.name = name
        self.port = free_port()
        self.socket = "inet:%d@127.0.0.1" % self.port
        self.path = None
        if unix:
            self.path = os.path.join(TMP, name + ".sock")
            self.socket = "unix:" + self.path
        site.sections.setdefault("milter", {})
        site.sections["milter"].setdefault("user", "")
        site.sections["milter"].setdefault("tmp_dir", TMP)
        site.set("milter", "socket", self.socket)
        self.log = os.path.join(TMP, name + ".log")
        self.proc = None

    def start(self, timeout=20):
        self.proc = procs.start([milter_binary(), "-f", "-c", self.site.conf], self.name,
                                log=self.log)
        if self.path is not None:
            end = time.time() + timeout
            while not os.path.exists(self.path) and time.time() < end:
                time.sleep(0.05)
            if not os.path.exists(self.path):
                raise RuntimeError("mailfort-milter did not listen; log:\n" + self.log_text())
        elif not wait_port(self.port, timeout):
            raise RuntimeError("mailfort-milter did not listen; log:\n" + self.log_text())
        return self

    def postfix_socket(self):
        """The socket as Postfix's smtpd_milters spells it."""
        if self.path is not None:
            return "unix:" + self.path
        return "inet:127.0.0.1:%d" % self.port

    def reload(self, timeout=10):
        """SIGHUP; True once the log says the configuration was reloaded."""
        before = self.log_text().count("configuration reloaded")
        os.kill(self.proc.pid, signal.SIGHUP)
        end = time.time() + timeout
        while time.time() < end:
            if self.log_text().count("configuration reloaded") > before:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if text in self.log_text():
                return True
            time.sleep(0.1)
        return False


def _lua_str(s):
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\r", "\\r").replace(
        "\n", "\\n") + "\""


def lua_session(milter, headers, body, sender="sender@example.org", rcpts=("user@example.test",),
                queue_id="QID1", reply=None, ip="192.0.2.7", chunk=60000):
    """Send one message through the milter with miltertest.

    headers: list of (name, value); body: str (CRLF line ends).
    reply: (code, xcode, text) to check against the SMTP reply the milter set.
    Returns dict: rc, out, eom (the reply code letter), flags for header adds,
    changes, body change, quarantine, reply match."""
    lines = [
        "local conn = mt.connect(%s)" % _lua_str(milter.socket),
        "if conn == nil then print('CONNECT-FAILED') os.exit(2) end",
        "mt.conninfo(conn, 'client.example', %s)" % _lua_str(ip),
        # HELO clears the MAIL-stage macros: say it before setting them.
        "mt.helo(conn, 'client.example')",
        "mt.macro(conn, SMFIC_MAIL, 'i', %s)" % _lua_str(queue_id),
        "local r = mt.mailfrom(conn, %s)" % _lua_str("<%s>" % sender),
    ]
    for rc in rcpts:
        lines.append("mt.rcptto(conn, %s)" % _lua_str("<%s>" % rc))
    for name, value in headers:
        lines.append("mt.header(conn, %s, %s)" % (_lua_str(name), _lua_str(value)))
    lines.append("mt.eoh(conn)")
    lines.append("local stopped = false")
    for i in range(0, len(body), chunk):
        lines.append("if not stopped then")
        lines.append("  if mt.bodystring(conn, %s) ~= nil then print('BODY-FAILED') end"
                     % _lua_str(body[i:i + chunk]))
        lines.append("  if mt.getreply(conn) ~= SMFIR_CONTINUE then print('BODY-REPLY='"
                     " .. string.char(mt.getreply(conn))) stopped = true end")
        lines.append("end")
    lines += [
        "if stopped then mt.disconnect(conn) os.exit(0) end",
        "if mt.eom(conn) ~= nil then print('EOM-FAILED') end",
        "print('EOM=' .. string.char(mt.getreply(conn)))",
        "for _, h in ipairs({'X-Spam-Flag', 'X-Spam-Score', 'X-Spam-Status'}) do",
        "  if mt.eom_check(conn, MT_HDRADD, h) then print('ADD=' .. h) end",
        "  if mt.eom_check(conn, MT_HDRCHANGE, h) then print('CHANGE=' .. h) end",
        "end",
        "if mt.eom_check(conn, MT_HDRADD, 'X-Spam-Flag', 'YES') then print('FLAG=YES') end",
        "if mt.eom_check(conn, MT_HDRADD, 'X-Spam-Flag', 'NO') then print('FLAG=NO') end",
        "if mt.eom_check(conn, MT_BODYCHANGE) then print('BODYCHANGE') end",
        "if mt.eom_check(conn, MT_QUARANTINE) then print('QUARANTINE') end",
    ]
    if reply is not None:
        lines.append("if mt.eom_check(conn, MT_SMTPREPLY, %s, %s, %s) then print('REPLY-MATCH') end"
                     % tuple(_lua_str(x) for x in reply))
    lines.append("mt.disconnect(conn)")
    path = os.path.join(TMP, "session-%d.lua" % random.randrange(1 << 30))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run(["miltertest", "-s", path], timeout=120)
    out = r.stdout.splitlines()
    res = {"rc": r.returncode, "out": r.stdout + r.stderr, "adds": set(), "changes": set()}
    for line in out:
        if line.startswith("EOM="):
            res["eom"] = line[4:]
        elif line.startswith("BODY-REPLY="):
            res["eom"] = line[11:]
        elif line.startswith("ADD="):
            res["adds"].add(line[4:])
        elif line.startswith("CHANGE="):
            res["changes"].add(line[7:])
        elif line.startswith("FLAG="):
            res["flag"] = line[5:]
    res["bodychange"] = "BODYCHANGE" in out
    res["quarantine"] = "QUARANTINE" in out
    res["reply_match"] = "REPLY-MATCH" in out
    return res


def spool_events(spool_dir, type_=None):
    """Every record in the spool's segments, decoded as JSON (checksums not verified)."""
    import json
    events = []
    for name in sorted(os.listdir(spool_dir)):
        if not name.startswith("events."):
            continue
        with open(os.path.join(spool_dir, name), "rb") as f:
            data = f.read()
        pos = 0
        while True:
            pos = data.find(b"MFSR", pos)
            if pos < 0 or pos + 24 > len(data):
                break
            n = int.from_bytes(data[pos + 4:pos + 8], "little")
            payload = data[pos + 24:pos + 24 + n]
            try:
                ev = json.loads(payload.decode("utf-8"))
                if type_ is None or ev.get("type") == type_:
                    events.append(ev)
                pos += 24 + n
            except ValueError:
                pos += 4
    return events
