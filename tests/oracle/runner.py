#!/usr/bin/env python3
"""Differential oracle for mailfort-milter's attachment policy.

    runner.py [--count N] [--seed S] [--deliver N] [--replay SEED] [--quiet]

Each message i gets its own seed (S + i): a base message with one attachment
(a program, a script or a harmless file, under a telling or a misleading
name), then one to three mutations from tests/oracle/mutators/*.py, each a
module with mutate(rng, msg_bytes) -> bytes.  The message goes to a real
mailfort-milter (the build under test, over its unix socket, as Postfix's
cleanup sends it), and the milter's answer is applied as Postfix would:
refused, held, or delivered with the body and headers it changed.

What was delivered is then read by readers that share no code with the
milter: Python's email package (every part, and uuencode / yEnc / BinHex
blocks in text), and bsdtar, 7z and unzip on every file, recursively, with
the password the generator used.  With --deliver N, the first N delivered
messages and every delivered message a reader finds a program in also go
through Postfix -> milter -> Dovecot LMTP, and Dovecot's own view over IMAP
(BODYSTRUCTURE, BODY[n]) is read the same way.

A failure is a program or script (by blocked name or by content) that a
reader extracts from a message the milter let through without holding,
refusing or tagging it as uninspectable.  Each is printed with its seed and
mutation chain; --replay SEED runs that one message again.  Exit status 1
when there is a failure.
"""
import argparse
import glob
import importlib.util
import os
import random
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "harness"))
sys.path.insert(0, HERE)

import readers  # noqa: E402

EXE = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8" + b"\x00" * 40 +
       b"\x80\x00\x00\x00This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 64)
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56
PAYLOADS = [
    ("invoice.exe", EXE), ("setup.scr", EXE), ("invoice.pdf", EXE), ("photo.jpg", EXE),
    ("update.js", b"var s = new ActiveXObject('WScript.Shell'); s.Run('calc');\n"),
    ("run.vbs", b"CreateObject(\"WScript.Shell\").Run \"calc\"\n"),
    ("tool", ELF), ("install.sh", b"#!/bin/sh\necho pwned\n"),
    ("notes.txt", b"#!/usr/bin/python3\nprint(1)\n"),
    ("report.pdf", b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"),
    ("minutes.txt", b"minutes of the budget committee\n" * 20),
]


def load_mutators():
    mods = {}
    for path in sorted(glob.glob(os.path.join(HERE, "mutators", "*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location("oracle_mut_" + name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if hasattr(mod, "mutate"):
            mods[name] = mod
    return mods


class Rng(random.Random):
    def __init__(self, seed):
        super().__init__(seed)
        self.log = []


def base_message(rng, i):
    name, data = rng.choice(PAYLOADS)
    import base64
    enc = base64.encodebytes(data).decode().replace("\n", "\r\n")
    rng.log.append("base: %s (%d bytes)" % (name, len(data)))
    return ("From: sender%d@outside.example\r\nTo: bob@example.test\r\n"
            "Subject: oracle %d\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <oracle%d@outside.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"=-b%d\"\r\n\r\n"
            "--=-b%d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nFile attached.\r\n"
            "--=-b%d\r\nContent-Type: application/octet-stream; name=\"%s\"\r\n"
            "Content-Disposition: attachment; filename=\"%s\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s--=-b%d--\r\n"
            % (i, i, i, i, i, i, name, name, enc, i)).encode()


def make(seed, mutators):
    rng = Rng(seed)
    msg = base_message(rng, seed)
    names = sorted(mutators)
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        name = rng.choice(names)
        try:
            msg = mutators[name].mutate(rng, msg)
        except Exception as e:  # noqa: BLE001 - a mutator's bug is not the milter's
            rng.log.append("%s: mutator error %r" % (name, e))
    return msg, rng.log


# ---------------------------------------------------------------- milter client

def scan(client, i, raw, submission=False):
    """raw through the milter (a milterlib.MtaClient) as Postfix's cleanup sends
    it: (reply command, reply data, modifications, headers, body)."""
    from milterlib import split_message
    data, waits = client.build(i, raw, sender=b"sender@outside.example",
                               rcpt=b"bob@example.test", auth=b"alice" if submission else None)
    cmd, reply, mods = client.send(data, waits)
    headers, body = split_message(raw)
    return cmd, reply, mods, headers, body


def apply_answer(cmd, data, mods, headers, body):
    """(verdict, delivered bytes or None, note) as Postfix would act on the answer."""
    if cmd in (b"r", b"y", b"t", b"d"):
        return "refused", None, data.rstrip(b"\0").decode(errors="replace")
    held = any(c == b"q" for c, _ in mods)
    tagged = False
    newbody = b"".join(d for c, d in mods if c == b"b")
    hdrs = list(headers)
    for c, d in mods:
        if c == b"h":
            k, v = d.split(b"\0")[:2]
            hdrs.append((k, v))
            tagged |= k.lower() == b"x-mailfort-uninspectable"
        elif c == b"m":
            idx = struct.unpack(">I", d[:4])[0]
            k, v = d[4:].split(b"\0")[:2]
            same = [j for j, (hk, _) in enumerate(hdrs) if hk.lower() == k.lower()]
            if idx >= 1 and idx <= len(same):
                if v:
                    hdrs[same[idx - 1]] = (k, v)
                else:
                    hdrs[same[idx - 1]] = None
            elif v:
                hdrs.append((k, v))
            hdrs = [h for h in hdrs if h is not None]
    if any(c == b"b" for c, _ in mods):
        body = newbody
    raw = b"".join(k + b": " + v.replace(b"\n", b"\r\n") + b"\r\n" for k, v in hdrs)
    raw += b"\r\n" + body
    if held:
        return "held", raw, ""
    return ("tagged" if tagged else "delivered"), raw, ""


def inspect(raw):
    """Programs the independent readers get out of raw: [(reader, path, why)]."""
    found = []
    for name, data in readers.files_from_email(raw):
        why = readers.dangerous(name, data)
        if why:
            found.append(("python-email", name or "(unnamed)", why))
        for tool, path, content in readers.unpack(name, data):
            why = readers.dangerous(path, content)
            if why:
                found.append((tool, path, why))
    return found


# ---------------------------------------------------------------- Dovecot's view

def _imap_tokens(s):
    i, out = 0, []
    while i < len(s):
        c = s[i]
        if c in "()":
            out.append(c)
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while s[j] != '"':
                if s[j] == "\\":
                    j += 1
                buf.append(s[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < len(s) and not s[j].isspace() and s[j] not in "()":
                j += 1
            atom = s[i:j]
            out.append(None if atom == "NIL" else atom)
            i = j
    return out


def _imap_tree(tokens):
    stack = [[]]
    for t in tokens:
        if t == "(":
            stack.append([])
        elif t == ")":
            if len(stack) == 1:
                break           # the FETCH response's own closing parenthesis
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(t)
    return stack[0]


def _leaves(bs, prefix=""):
    if bs and isinstance(bs[0], list):      # multipart
        n = 0
        for child in bs:
            if not isinstance(child, list):
                break
            n += 1
            yield from _leaves(child, (prefix + "." if prefix else "") + str(n))
        return
    name = None
    for item in bs:
        if isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str) and \
                item[0].lower() in ("attachment", "inline") and isinstance(item[1], list):
            kv = item[1]
            for k in range(0, len(kv) - 1, 2):
                if str(kv[k]).lower() in ("filename", "filename*"):
                    name = kv[k + 1]
    params = bs[2] if len(bs) > 2 and isinstance(bs[2], list) else []
    for k in range(0, len(params) - 1, 2):
        if name is None and str(params[k]).lower() == "name":
            name = params[k + 1]
    enc = (bs[5] or "7bit").lower() if len(bs) > 5 and isinstance(bs[5], str) else "7bit"
    yield prefix or "1", (bs[0] or "").lower(), name, enc


def dovecot_files(imap, uid):
    typ, data = imap.uid("FETCH", uid, "(BODYSTRUCTURE)")
    text = "".join(x.decode(errors="replace") if isinstance(x, bytes) else
                   "".join(y.decode(errors="replace") for y in x) for x in data)
    tree = _imap_tree(_imap_tokens(text[text.index("BODYSTRUCTURE") + 13:]))
    out = []
    import base64
    import quopri
    for section, mtype, name, enc in _leaves(tree[0]):
        typ, d = imap.uid("FETCH", uid, "(BODY.PEEK[%s])" % section)
        content = b"".join(x[1] for x in d if isinstance(x, tuple))
        try:
            if enc == "base64":
                content = base64.b64decode(content)
            elif enc == "quoted-printable":
                content = quopri.decodestring(content)
        except ValueError:
            pass
        out.append((name, content))
        if mtype == "text":
            out.extend(readers.embedded_blocks(content.decode("latin-1")))
    return out


class Stack:
    """Postfix -> milter -> Dovecot, for the messages delivered for real."""

    def __init__(self, milter):
        from stack import Dovecot, Postfix
        self.dc = Dovecot("oracle", users={"bob": "secret"}).start()
        self.pf = Postfix("oracle", dovecot=self.dc, milter=milter.postfix_socket()).start()
        self.sent = 0

    def deliver(self, seed, raw):
        """Dovecot's view of the message as delivered, or a word why there is none."""
        import smtplib
        marker = "oracle-seed-%d" % seed
        raw = raw.replace(b"Subject: ", b"X-Oracle: " + marker.encode() + b"\r\nSubject: ", 1)
        try:
            with smtplib.SMTP("127.0.0.1", self.pf.smtp_port, timeout=60) as s:
                s.sendmail("sender@outside.example", ["bob@example.test"], raw)
        except smtplib.SMTPException as e:
            return "refused", []
        self.sent += 1
        end = time.time() + 30
        imap = self.dc.imap_login("bob", "secret")
        try:
            while time.time() < end:
                imap.select("INBOX")
                typ, data = imap.uid("SEARCH", None, "HEADER", "X-Oracle", marker)
                uids = data[0].split()
                if uids:
                    return "delivered", dovecot_files(imap, uids[-1].decode())
                if any(q for sub, q in self.pf.queue_ids() if sub == "hold"):
                    pass
                time.sleep(0.3)
            return "not delivered (held or lost)", []
        finally:
            imap.logout()

    def stop(self):
        self.pf.stop()
        self.dc.stop()


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("ORACLE_SEED", "1")))
    ap.add_argument("--deliver", type=int, default=0,
                    help="deliver the first N accepted messages through Postfix and Dovecot")
    ap.add_argument("--replay", type=int, help="run the message of this seed only, verbosely")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    from mailfort import Site
    from milterlib import Milter, MtaClient

    # stopped from outside (the campaign, a timeout): stop the stack too
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mutators = load_mutators()
    site = Site("oracle", extra={"milter": {"spam": "no", "socket_mode": "0666"}})
    milter = Milter(site, name="oracle-milter", unix=True).start()
    stack = Stack(milter) if args.deliver > 0 else None
    seeds = [args.replay] if args.replay is not None else \
        [args.seed + i for i in range(args.count)]
    counts = {}
    failures = []
    delivered_real = 0
    t0 = time.time()
    client = MtaClient(milter.path, timeout=120)
    try:
        for n, seed in enumerate(seeds):
            msg, chain = make(seed, mutators)
            try:
                cmd, data, mods, headers, body = scan(client, n, msg)
            except (RuntimeError, OSError, AssertionError):
                # the milter closes a connection left idle too long (a slow
                # mutator): a new one, as Postfix would open, and once more
                client = MtaClient(milter.path, timeout=120)
                try:
                    cmd, data, mods, headers, body = scan(client, n, msg)
                except (RuntimeError, OSError, AssertionError) as e:
                    failures.append((seed, chain, "milter connection failed: %r" % e))
                    client = MtaClient(milter.path, timeout=120)
                    continue
            verdict, raw, note = apply_answer(cmd, data, mods, headers, body)
            counts[verdict] = counts.get(verdict, 0) + 1
            if args.replay is not None:
                print("seed %d: %s %s\n  chain: %s" % (seed, verdict, note, " | ".join(chain)))
            if verdict in ("refused", "held", "tagged"):
                continue
            found = inspect(raw)
            for reader, path, why in found:
                failures.append((seed, chain, "%s extracts %s (%s) from a delivered message"
                                 % (reader, path, why)))
            if stack is not None and (delivered_real < args.deliver or found):
                delivered_real += 1
                state, files = stack.deliver(seed, msg)
                for name, content in files:
                    for label, p, c in [("dovecot", name, content)] + \
                            [("dovecot+" + t, p2, c2) for t, p2, c2 in readers.unpack(name,
                                                                                     content)]:
                        why = readers.dangerous(p, c)
                        if why:
                            failures.append((seed, chain, "%s extracts %s (%s) after delivery"
                                             % (label, p, why)))
                if not args.quiet and state != "delivered":
                    print("# seed %d: through Postfix: %s" % (seed, state))
    finally:
        client.sock.close()
        if stack is not None:
            stack.stop()
        milter.stop()
    elapsed = time.time() - t0
    for seed, chain, what in failures:
        print("FAIL seed=%d: %s\n  chain: %s\n  replay: tests/oracle/runner.py --replay %d"
              % (seed, what, " | ".join(chain), seed))
    print("oracle: %d messages in %.0f s (%s); %d delivered through Postfix and Dovecot; "
          "mutators: %s; %d failures"
          % (len(seeds), elapsed, ", ".join("%s %d" % kv for kv in sorted(counts.items())),
             delivered_real, ", ".join(sorted(mutators)), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
