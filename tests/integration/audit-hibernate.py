#!/usr/bin/env python3
"""An IMAP session that Dovecot hibernates (IDLE past imap_hibernate_timeout)
and restores in another imap process is still one session in the audit
trail: one login, one logout with the whole duration, the same session id.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, audit_dovecot, events  # noqa: E402

site = Site("audit-hibernate", extra={"spool": {"node": "n1"}})
auditd = Auditd(site)
extra = """imap_hibernate_timeout = 1s
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0666
  }
}
service imap {
  unix_listener imap-master {
    mode = 0666
  }
}
"""
dc = audit_dovecot("hb", site, extra=extra)  # short: Dovecot socket paths are limited
dc.start()


def say(s, line, wait=0.4):
    s.sendall(line)
    time.sleep(wait)
    return s.recv(65536)


s = socket.create_connection(("127.0.0.1", dc.imap_port), timeout=10)
s.recv(1000)
say(s, b"a LOGIN alice alicepw\r\n")
say(s, b"b SELECT INBOX\r\n")
say(s, b"c IDLE\r\n", wait=4)
tap.ok(b"c OK" in say(s, b"DONE\r\n", wait=0.6), "IDLE ends normally after hibernation")
say(s, b"d LOGOUT\r\n")
s.close()
time.sleep(0.5)
auditd.once()
ev = [e for e in events(site) if e["type"] in ("login", "logout")]
tap.eq([e["type"] for e in ev], ["login", "logout"], "one login and one logout")
tap.ok(len(ev) == 2 and ev[0]["pid"] != ev[1]["pid"],
       "the session was restored in another imap process (hibernated)", ev)
tap.ok(len(ev) == 2 and ev[0]["session"] == ev[1]["session"] and ev[1]["reason"] == "logout"
       and ev[1]["duration_ms"] >= 4000, "same session id, reason logout, the whole duration", ev)
dc.stop()
tap.done()
