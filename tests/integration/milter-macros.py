#!/usr/bin/env python3
"""mailfort-milter asks Postfix only for the macros it reads.

In the option negotiation the milter sends a macro list for every stage
naming just "i", the queue id, and at HELO also {tls_version} and {cipher}
(recorded in the verdict), and at MAIL FROM {auth_authen} (an authenticated
sender is submission), so that Postfix neither looks up nor sends the
others (by default it sends a dozen: daemon name, client
names, auth and address macros).  Checked against a real Postfix with
verbose logging for the test client (debug_peer_list): smtpd logs each list
it takes over and the macros it sends with each event.  The verdict event
still carries Postfix's queue id (smtpd has one from DATA on; cleanup sends
it with the end of the message).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from milterlib import Milter, spool_events  # noqa: E402
from stack import Postfix  # noqa: E402

STAGES = ("CONNECT", "HELO", "ENVFROM", "ENVRCPT", "DATA", "EOM", "EOH")

site = Site("milter-mac")
m = Milter(site).start()
pf = Postfix("milter-mac", milter="inet:127.0.0.1:%d" % m.port,
             extra_main={"debug_peer_list": "127.0.0.1"}).start()

msg = ("From: alice@gov.example\r\nTo: bob@example.test\r\nSubject: macro lists\r\n"
       "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <macros@gov.example>\r\n\r\n"
       "minutes of the meeting\r\n")
code = 0
try:
    with pf.smtp() as s:
        s.sendmail("alice@gov.example", ["bob@example.test"], msg.encode())
    code = 250
except Exception as e:  # noqa: BLE001 - reported below
    tap.diag(repr(e))
tap.eq(code, 250, "the message is accepted")

end = time.time() + 20
while time.time() < end and "status=sent" not in pf.maillog_text():
    time.sleep(0.2)
log = pf.maillog_text()
overrides = dict(re.findall(r'override SMFIM_(\w+) macro list with "([^"]*)"', log))
tap.eq(sorted(overrides.items()),
       sorted((st, "i {tls_version} {cipher}" if st == "HELO"
               else "i {auth_authen}" if st == "ENVFROM" else "i") for st in STAGES),
       "Postfix takes a list naming only \"i\" for each of the 7 stages, the TLS "
       "macros at HELO and the authenticated name at MAIL FROM (submission or not)")

events = re.findall(r"event: SMFIC_(\w+); macros:(.*)", log)
seen = dict(events)
data = seen.get("DATA", "")
tap.ok(re.fullmatch(r" i=[0-9A-Za-z]+", data), "DATA comes with the queue id alone",
       (data, log[-3000:]))
qid = data.strip()[2:]
tap.ok(all(st in seen for st in ("CONNECT", "HELO", "MAIL", "RCPT")) and
       all(v in (" (none)", " i=" + qid) for _st, v in events),
       "connect, HELO, MAIL and RCPT come with nothing else (the queue id comes later)", events)
tap.ok(not any("{" in v or "=" in v.replace(" i=", "") for _st, v in events),
       "none of Postfix's default macros is sent (nor the TLS ones: no TLS here)", events)

ev = [e for e in spool_events(site.spool, "verdict")]
tap.ok(len(ev) == 1 and qid and ev[0].get("queue_id") == qid,
       "the verdict is recorded under Postfix's queue id %s" % qid,
       [e.get("queue_id") for e in ev])
pf.stop()
m.stop()
tap.done()
