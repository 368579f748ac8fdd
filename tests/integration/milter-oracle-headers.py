#!/usr/bin/env python3
"""The header mutator of the differential oracle, against the milter and Python's email.

tests/oracle/mutators/headers.py mutates the MIME headers of messages that
carry a Windows program (duplicate fields, case and folding, RFC 2231
splits, boundary tricks, encodings, odd bytes).  Each mutated message goes
through the real milter (miltertest, the way Postfix hands it over: the
header split into fields, the body after it) and is read by Python's email
package under both of its policies.  A message from which Python extracts
the program (content starting with "MZ", or a blocked name) must not be
accepted unchanged: the milter has to strip it, hold it or refuse it (as
ambiguous or otherwise).  Also checked: every kind of mutation was applied,
the unmutated seeds are caught (the check can fail), and the mutations
produce both refused-as-ambiguous and accepted messages (ordinary variants
pass).  MF_ORACLE_SEED and MF_ORACLE_COUNT change the run.
"""
import base64
import email
import email.policy
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/oracle/mutators"))
import headers  # noqa: E402
from mailfort import TMP, Site, tap  # noqa: E402
from milterlib import Milter, spool_events  # noqa: E402

EXE = base64.encodebytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xffThis program cannot "
                         b"be run in DOS mode." + bytes(range(64))).replace(b"\n", b"\r\n")
HEAD = (b"From: alice@gov.example\r\nTo: bob@example.test\r\nSubject: %s\r\n"
        b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")


def seeds():
    text = b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attachment.\r\n"
    out = []
    for name, ctype in ((b"invoice.exe", b"application/octet-stream"),
                        (b"invoice.pdf", b"application/pdf")):
        out.append(HEAD % b"seed" + b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n" +
                   text + b"--B\r\nContent-Type: " + ctype + b"; name=\"" + name +
                   b"\"\r\nContent-Disposition: attachment; filename=\"" + name +
                   b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + EXE + b"--B--\r\n")
    out.append(HEAD % b"seed" + b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n" +
               b"--B\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n"
               b"--A\r\nContent-Type: text/plain\r\n\r\nhi\r\n--A\r\nContent-Type: text/html"
               b"\r\n\r\n<p>hi</p>\r\n--A--\r\n--B\r\nContent-Type: application/octet-stream; "
               b"name=\"tool.scr\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + EXE +
               b"--B--\r\n")
    return out


def split_like_postfix(msg):
    """(fields, body): the header as Postfix passes it to a milter."""
    fields, pos = [], 0
    while pos < len(msg):
        nl = msg.find(b"\n", pos)
        line = msg[pos:nl + 1 if nl >= 0 else len(msg)]
        text = line.rstrip(b"\r\n")
        if text == b"":
            pos += len(line)
            break
        if text[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += b"\r\n" + text
        elif b":" in text and all(33 <= c <= 126 for c in text.split(b":", 1)[0].rstrip(b" \t")) \
                and text.split(b":", 1)[0].strip():
            name, _, value = text.partition(b":")
            fields.append([name.rstrip(b" \t"), value.lstrip(b" \t")])
        else:
            break  # Postfix ends the header at a line that is not a field
        pos += len(line)
    return fields, msg[pos:]


def lua(b):
    return "\"" + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\%03d" % c
                          for c in b) + "\""


def milter_verdict(m, msg, n):
    fields, body = split_like_postfix(msg)
    lines = ["local conn = mt.connect(%s)" % lua(m.socket.encode()),
             "if conn == nil then print('CONNECT-FAILED') os.exit(2) end",
             "mt.conninfo(conn, 'client.example', '192.0.2.7')",
             "mt.helo(conn, 'client.example')",
             "mt.macro(conn, SMFIC_MAIL, 'i', 'Q%d')" % n,
             "mt.mailfrom(conn, '<alice@gov.example>')",
             "mt.rcptto(conn, '<bob@example.test>')"]
    for name, value in fields:
        lines.append("mt.header(conn, %s, %s)" % (lua(name.replace(b"\0", b"")),
                                                   lua(value.replace(b"\0", b""))))
    lines += ["mt.eoh(conn)", "mt.bodystring(conn, %s)" % lua(body),
              "if mt.eom(conn) ~= nil then print('EOM-FAILED') end",
              "print('EOM=' .. string.char(mt.getreply(conn)))",
              "if mt.eom_check(conn, MT_BODYCHANGE) then print('BODYCHANGE') end",
              "if mt.eom_check(conn, MT_QUARANTINE) then print('QUARANTINE') end",
              "mt.disconnect(conn)"]
    path = os.path.join(TMP, "oracle-%d.lua" % n)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["miltertest", "-s", path], capture_output=True, text=True, timeout=60)
    out = r.stdout.splitlines()
    eom = [x[4:] for x in out if x.startswith("EOM=")]
    return {"eom": eom[0] if eom else None, "stripped": "BODYCHANGE" in out,
            "held": "QUARANTINE" in out, "out": r.stdout + r.stderr}


def python_programs(msg):
    """Names (or '?') of programs Python's email package extracts, under both policies."""
    found = set()
    for pol in (email.policy.compat32, email.policy.default):
        try:
            root = email.message_from_bytes(msg, policy=pol)
            for part in root.walk():
                if part.is_multipart():
                    continue
                try:
                    data = part.get_payload(decode=True) or b""
                except Exception:  # noqa: BLE001 - a reader's failure is no program
                    data = b""
                name = (part.get_filename() or "") if pol is email.policy.compat32 else \
                    str(part.get_filename() or "")
                if data.startswith(b"MZ") or name.lower().endswith((".exe", ".scr", ".js")):
                    found.add(name or "?")
        except Exception:  # noqa: BLE001
            pass
    return found


site = Site("milter-oracle", extra={"milter": {"spam": "no"}})
m = Milter(site).start()
seed = int(os.environ.get("MF_ORACLE_SEED", "20261208"))
count = int(os.environ.get("MF_ORACLE_COUNT", "150"))
rng = random.Random(seed)

caught_seeds = 0
for i, s in enumerate(seeds()):
    v = milter_verdict(m, s, 10000 + i)
    caught_seeds += 1 if (python_programs(s) and (v["eom"] != "c" or v["stripped"] or v["held"])) \
        else 0
tap.eq(caught_seeds, len(seeds()), "every unmutated seed carries a program the milter catches")

applied = {}
orig = list(headers.MUTATIONS)


def counting(fn):
    def wrap(r, msg):
        out = fn(r, msg)
        if out != msg:
            applied[fn.__name__] = applied.get(fn.__name__, 0) + 1
        return out
    return wrap


headers.MUTATIONS[:] = [counting(f) for f in orig]
escapes, refused, accepted = [], 0, 0
base = seeds()
for n in range(count):
    msg = headers.mutate(rng, rng.choice(base).replace(b"Subject: seed", b"Subject: m%d" % n))
    progs = python_programs(msg)
    v = milter_verdict(m, msg, n)
    if v["eom"] is None:
        escapes.append((n, "no verdict", v["out"][-300:]))
        continue
    if v["eom"] != "c":
        refused += 1
    elif v["stripped"] or v["held"]:
        pass
    else:
        accepted += 1
        if progs:
            escapes.append((n, sorted(progs), msg[:1500]))
headers.MUTATIONS[:] = orig
events = spool_events(site.spool, "verdict")
ambiguous = [e for e in events if e.get("ambiguous")]
tap.ok(not escapes, "%d mutated messages: no program that Python extracts is accepted unchanged"
       % count, escapes[:3])
tap.ok(sorted(applied) == sorted(f.__name__ for f in orig),
       "every kind of header mutation was applied", applied)
tap.ok(len(ambiguous) > 0 and refused >= len(ambiguous),
       "mutations are refused as ambiguous MIME (%d)" % len(ambiguous),
       sorted(set(e["ambiguous"].split(" (")[0] for e in ambiguous))[:20])
tap.ok(count - refused > 0, "and others (harmless variants) are not refused (%d)" % (count - refused))
tap.diag("seed %d: %d refused (%d as ambiguous), %d stripped or held, %d accepted"
         % (seed, refused, len(ambiguous), count - refused - accepted, accepted))
m.stop()
tap.done()
