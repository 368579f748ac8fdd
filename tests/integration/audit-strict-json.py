#!/usr/bin/env python3
"""mailfort-auditd and records that json-c accepts but jsonb does not.

audit_events.payload is checked with payload::jsonb.  json-c, which auditd
uses to derive the columns, also accepts single quotes, trailing commas,
comments, NaN, Infinity, leading zeros and lone surrogate escapes.  Such a
record must not make PostgreSQL refuse the whole batch again and again (the
trail would stop and the valid events around it would never be shipped): it
is stored as type "invalid" with its text (event strings end at 64 KiB), and
the events around it are shipped in order.  Strict JSON that jsonb accepts is stored unchanged.
The same holds for an event time PostgreSQL's text input refuses (year 0000, which is 1 BC),
and for a record holding a NUL byte.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, auth_event, events, spool_append  # noqa: E402

site = Site("audit-strict-json", extra={"spool": {"node": "n1"}, "auditd": {"alerts": "no"}})
auditd = Auditd(site)

LENIENT = [
    "{'type':'read','user':'a'}",
    '{"type":"read","user":"a",}',
    '/* c */{"type":"read","user":"a"}',
    '{"type":"read","user":"a","n":NaN}',
    '{"type":"read","user":"a","n":Infinity}',
    '{"type":"read","user":"a","n":-Infinity}',
    '{"type":"read","user":"a","n":01}',
    '{"type":"read","user":"a","s":"\\ud800"}',
    '{"type":"read","user":"a","s":"\\udc00x"}',
    '{"type":"read","user":"a","s":"\\ud800\\u0041"}',
    '{"type":"read","user":"a","n":1e99999}',
    '{"type":"read","user":"a","n":1%s}' % ("0" * 140000),
]
STRICT = [
    # an escaped backslash, then the text u0000: not a NUL character
    '{"type":"read","user":"a","s":"a\\\\u0000"}',
    '{"type":"read","user":"a","s":"\\ud83d\\ude00 \\" \\\\ \\/ \\b\\f\\n\\r\\t","n":-0.5e-3}',
    ' {"type":"read","user":"a","a":[1,true,false,null,{"x":[]},{}],"e":1E+2} ',
    '{"type":"read","user":"a","time":"0000-06-01T12:00:00Z"}',
]
good = auth_event("first", "192.0.2.1", result="ok", reason="ok")
last = auth_event("last", "192.0.2.1", result="ok", reason="ok")
spool_append(site, [good] + LENIENT + STRICT + [last])
n = 2 + len(LENIENT) + len(STRICT)
r = auditd.once(check=False)
tap.ok(r.returncode == 0, "auditd ships the batch", r.stdout + r.stderr)
tap.eq(site.scalar("SELECT coalesce(max(last_seq), 0) FROM mailfort.audit_heads"), str(n),
       "every record reached the trail")
ev = events(site)
tap.eq([e["type"] for e in ev],
       ["auth"] + ["invalid"] * len(LENIENT) + ["read"] * len(STRICT) + ["auth"],
       "lenient records are stored as invalid, strict ones as they are, in order")
raws = [e.get("raw") or "" for e in ev[1:1 + len(LENIENT)]]
tap.eq(raws[:-1], LENIENT[:-1], "each invalid record keeps its exact text")
tap.ok(len(raws[-1]) > 60000 and LENIENT[-1].startswith(raws[-1][:60000]),
       "(the 140,000-digit number as far as an event string goes)", len(raws[-1]))
tap.ok(all("strict JSON" in e.get("reason", "") for e in ev[1:1 + len(LENIENT)]),
       "the reason says why", [e.get("reason") for e in ev[1:1 + len(LENIENT)]])
stored = site.sql("SELECT payload FROM mailfort.audit_events WHERE type = 'read' ORDER BY seq")
tap.eq([p[0] for p in stored], [s for s in STRICT], "strict JSON is stored byte for byte")
tap.eq(site.scalar("SELECT count(*) FROM mailfort.audit_events WHERE payload::jsonb IS NOT NULL"),
       str(n), "every stored payload reads as jsonb")
tap.eq(site.scalar("SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI BC') "
                   "FROM mailfort.audit_events WHERE payload = $$%s$$" % STRICT[-1]),
       "0001-06-01 12:00 BC", "an event of year 0000 keeps its time (1 BC)")

# A record holding a NUL byte: not JSON as it is, and its text cannot be
# kept as \u0000 either (jsonb refuses it): the NUL becomes U+FFFD in the
# stored text and the trail goes on.
spool_append(site, ['{"type":"read","user":"a","s":"x\0y"}',
                    auth_event("after-nul", "192.0.2.1", result="ok", reason="ok")])
r = auditd.once(check=False)
ev = events(site)
tap.ok(r.returncode == 0, "auditd ships a record with a NUL byte", r.stdout + r.stderr)
tap.eq([e["type"] for e in ev[-2:]], ["invalid", "auth"],
       "a record with a NUL byte is stored as invalid, and the event after it is shipped")
tap.ok("x\ufffdy" in (ev[-2].get("raw") or ""), "its text keeps the rest, the NUL as U+FFFD",
       ev[-2].get("raw"))
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0, "the trail verifies", r.stdout + r.stderr)
tap.done()
