"""Helpers for mailfort-milter's integration tests.

    from milterlib import Milter, MtaClient, train_corpus, lua_session, spool_events

Milter(site) runs the freshly built mailfort-milter in the foreground on a
free loopback port (stopped at exit).  train_corpus writes a small labelled
set of generated messages (a Maildir of spam, an mbox of ham) so that tests
never need an external corpus.  lua_session builds a miltertest script for
one message and returns what the milter answered, parsed.  MtaClient talks
to a milter's unix socket directly, exactly as Postfix does, for benchmarks
and bulk runs where miltertest would be too slow.
"""

import os
import random
import signal
import socket
import struct
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


# milter protocol (Sendmail 8 milter, version 6), the parts Postfix uses
SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT = 0x1, 0x2, 0x4, 0x8
SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NR_HDR = 0x10, 0x20, 0x40, 0x80
SMFIP_NOUNKNOWN, SMFIP_NODATA, SMFIP_SKIP, SMFIP_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
SMFIP_NR_DATA, SMFIP_NR_UNKN, SMFIP_NR_EOH, SMFIP_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
SMFIP_HDR_LEADSPC = 0x100000
POSTFIX_PROTO = 0x1FFFFF          # every event and no-reply flag Postfix 3.x offers
POSTFIX_ACTIONS = 0x1FF
FINAL_REPLIES = b"acdrty"         # accept continue discard reject tempfail replycode


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


# SMFIM_* stage numbers of the macro lists, by the command they go with
STAGES = {b"C": 0, b"H": 1, b"M": 2, b"R": 3, b"T": 4, b"E": 5, b"N": 6}


def macros(stage, pairs, wanted=None):
    if wanted is not None and STAGES.get(stage) in wanted:
        names = wanted[STAGES[stage]]
        pairs = [(k, v) for k, v in pairs if k.strip(b"{}") in names]
        if not pairs:
            return b""
    return packet(b"D", stage + b"".join(k + b"\0" + v + b"\0" for k, v in pairs))


def split_message(raw):
    """(headers as [(name, value)], body with CRLF line ends) as Postfix sends them."""
    raw = raw.replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        head, body = raw, b""
    headers = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\n" + line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            headers.append((name.strip(), value[1:] if value.startswith(b" ") else value))
    return headers, body.replace(b"\n", b"\r\n")


class MtaClient:
    """One MTA connection to the milter over its unix socket, as Postfix's
    smtpd + cleanup: option negotiation with the events and replies Postfix
    offers, only the macros the milter asked for, connect, HELO, then per
    message MAIL, RCPT, every header, end of headers, the body in 64 KB
    packets and end of message.  Used by bench/milter-cpu and the
    differential oracle (tests/oracle/runner.py)."""

    def __init__(self, path, index=0, timeout=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall(packet(b"O", struct.pack(">III", 6, POSTFIX_ACTIONS, POSTFIX_PROTO)))
        cmd, data = self.read()
        if cmd != b"O" or len(data) < 12:
            raise RuntimeError("bad option negotiation reply %r" % cmd)
        _, _, self.proto = struct.unpack(">III", data[:12])
        # the macros the milter asked for, per stage (SMFIF_SETSYMLIST: a
        # stage number and a NUL-terminated list of names, repeated);
        # Postfix sends only those, and all of its defaults otherwise
        self.wanted = {}
        rest = data[12:]
        while len(rest) >= 5:
            stage = struct.unpack(">I", rest[:4])[0]
            names, _, rest = rest[4:].partition(b"\0")
            self.wanted[stage] = set(n.strip(b"{}") for n in names.split())
        self.index = index
        first = b""
        if not self.proto & SMFIP_NOCONNECT:
            first += macros(b"C", [(b"j", b"mx.example.test"), (b"{daemon_name}", b"smtpd"),
                                   (b"v", b"Postfix 3.7")], self.wanted)
            first += packet(b"C", b"client.example\0" + b"4" + struct.pack(">H", 40000 + index)
                            + b"192.0.2.%d\0" % (index % 250 + 1))
        if not self.proto & SMFIP_NOHELO:
            first += packet(b"H", b"client.example\0")
        self.sock.sendall(first)
        if not self.proto & SMFIP_NOCONNECT and not self.proto & SMFIP_NR_CONN:
            self.expect_final()
        if not self.proto & SMFIP_NOHELO and not self.proto & SMFIP_NR_HELO:
            self.expect_final()

    def read(self):
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("milter closed the connection")
            self.buf += chunk
        n = struct.unpack(">I", self.buf[:4])[0]
        cmd, data = self.buf[4:5], self.buf[5:4 + n]
        self.buf = self.buf[4 + n:]
        return cmd, data

    def expect_final(self):
        """(reply command, its data, [(modification command, data)] before it)."""
        mods = []
        while True:
            cmd, data = self.read()
            if cmd in FINAL_REPLIES:
                return cmd, data, mods
            mods.append((cmd, data))

    def build(self, i, raw, sender=b"bench@sender.example", rcpt=None, auth=None):
        """The bytes Postfix sends for one message (queue id derived from i; auth:
        the {auth_authen} of a logged-in sender), and how many replies to wait
        for before end of message."""
        p = self.proto
        out, waits = [], 0
        qid = b"%X" % (0x10000 + i)
        if not p & SMFIP_NOMAIL:
            pairs = [(b"i", qid), (b"{mail_addr}", sender)]
            if auth is not None:
                pairs.append((b"{auth_authen}", auth))
            out.append(macros(b"M", pairs, self.wanted))
            out.append(packet(b"M", b"<" + sender + b">\0"))
            waits += not p & SMFIP_NR_MAIL
        if not p & SMFIP_NORCPT:
            rcpt = rcpt or b"rcpt%d@example.test" % (i % 50)
            out.append(macros(b"R", [(b"{rcpt_addr}", rcpt)], self.wanted))
            out.append(packet(b"R", b"<" + rcpt + b">\0"))
            waits += not p & SMFIP_NR_RCPT
        headers, body = split_message(raw)
        if not p & SMFIP_NOHDRS:
            for name, value in headers:
                if not p & SMFIP_HDR_LEADSPC:
                    value = value.lstrip(b" ")
                out.append(packet(b"L", name + b"\0" + value + b"\0"))
                waits += not p & SMFIP_NR_HDR
        if not p & SMFIP_NOEOH:
            out.append(macros(b"N", [(b"i", qid)], self.wanted))
            out.append(packet(b"N"))
            waits += not p & SMFIP_NR_EOH
        if not p & SMFIP_NOBODY:
            for off in range(0, len(body), 65535):
                out.append(packet(b"B", body[off:off + 65535]))
                waits += not p & SMFIP_NR_BODY
        out.append(macros(b"E", [(b"i", qid)], self.wanted))
        out.append(packet(b"E"))
        return b"".join(out), waits

    def send(self, data, waits):
        """Send one message built by build(); the end-of-message answer as
        expect_final() returns it."""
        self.sock.sendall(data)
        # Postfix reads answers of the steps it waits for (none with the
        # flags mailfort-milter asks for), then the end-of-message answer
        for _ in range(waits):
            self.expect_final()
        return self.expect_final()

    def close(self):
        try:
            self.sock.sendall(packet(b"Q"))
        except OSError:
            pass
        self.sock.close()
