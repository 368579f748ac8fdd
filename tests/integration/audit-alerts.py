#!/usr/bin/env python3
"""mailfort-auditd alert rules: each fires in a scenario built for it, once,
and a normal session raises none.

Thresholds are lowered in [auditd].  Mail reads and deletes come from a real
Dovecot session; authentication events are spooled as pam_mailfort writes
them.  Each alert must appear in audit.alerts, be announced with NOTIFY
mailfort_alert, and be mailed to security_address through the configured
sendmail (a script that keeps the message).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, tap  # noqa: E402
from auditlib import Auditd, audit_dovecot, auth_event, message, spool_append, submit_events  # noqa: E402
import json  # noqa: E402

mailbox = os.path.join(TMP, "alert-mail.txt")
sendmail = os.path.join(TMP, "fake-sendmail")
with open(sendmail, "w") as f:
    f.write("#!/bin/sh\n[ \"$1\" = -t ] || exit 64\ncat >> '%s'\necho '----' >> '%s'\n" % (mailbox, mailbox))
os.chmod(sendmail, 0o755)
if os.path.exists(mailbox):
    os.unlink(mailbox)

site = Site("audit-alerts", extra={
    "spool": {"node": "n1"},
    "auditd": {"failed_logins": 3, "failed_logins_ip": 4, "failed_logins_window": "10m",
               "mass_read": 5, "mass_read_window": "10m", "mass_delete": 4,
               "mass_delete_window": "10m", "new_ip_days": 30,
               "security_address": "security@example.test", "sendmail": sendmail}})
auditd = Auditd(site)
dc = audit_dovecot("al", site)  # short: Dovecot socket paths are limited
dc.start()


def alerts():
    return site.sql("SELECT rule, coalesce(username, ''), coalesce(host(ip), ''), severity "
                    "FROM audit.alerts ORDER BY id")


def ship():
    time.sleep(0.3)
    auditd.once()


def login_event(user, ip):
    return json.dumps({"v": 1, "type": "login", "time": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
                       "node": "n1", "pid": 1, "user": user, "service": "imap", "ip": ip,
                       "client": "unknown", "result": "ok"})


# ------------------------------------------------------------ a normal session: silence
for i in range(3):
    dc.lmtp_deliver("s@example.test", "alice", message("a%d" % i))
submit_events(site, [auth_event("alice", "127.0.0.1", reason="bad_password")] * 2
              + [auth_event("alice", "127.0.0.1", result="ok", reason="ok")])
m = dc.imap_login("alice", "alicepw")
m.select("INBOX")
m.fetch("1:2", "(BODY[])")
m.store("3", "+FLAGS", "\\Deleted")
m.expunge()
m.logout()
m = dc.imap_login("alice", "alicepw")  # a second login from the same address
m.logout()
ship()
tap.eq(alerts(), [], "a normal session (reads, a delete, two typos, two logins) raises no alert")

# ------------------------------------------------------------ failed logins per account
listen = subprocess.Popen(["psql", "-X", "-h", site.pg.host, "-p", str(site.pg.port), "-U", site.pg.user,
                           "-d", site.db, "-c", "LISTEN mailfort_alert", "-c", "SELECT pg_sleep(4)",
                           "-c", "SELECT 1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
time.sleep(0.5)
submit_events(site, [auth_event("carol", "198.51.100.%d" % i) for i in range(1, 4)])
ship()
tap.eq(alerts(), [["failed_logins", "carol", "", "warning"]], "3 failed logins for one account: alert")
notify = listen.communicate(timeout=30)[0]
tap.ok('notification "mailfort_alert"' in notify, "the alert was announced with NOTIFY mailfort_alert", notify)
submit_events(site, [auth_event("carol", "198.51.100.9")] * 2)
ship()
tap.eq(len(alerts()), 1, "more failures within the window do not repeat the alert")

# ------------------------------------------------------------ failed logins per address
submit_events(site, [auth_event("u%d" % i, "203.0.113.7") for i in range(4)])
ship()
tap.eq(alerts()[1:], [["failed_logins_ip", "", "203.0.113.7", "warning"]],
       "4 failed logins from one address (different accounts): alert")

# ------------------------------------------------------------ replayed code, locked account
submit_events(site, [auth_event("erin", "192.0.2.50", reason="replay")])
ship()
tap.eq(alerts()[2:], [["totp_replay", "erin", "192.0.2.50", "critical"]], "replayed TOTP code: critical alert")
submit_events(site, [auth_event("frank", "192.0.2.51", reason="locked")])
ship()
tap.eq(alerts()[3:], [["locked_login", "frank", "192.0.2.51", "warning"]], "login attempt on a locked account: alert")

# ------------------------------------------------------------ new address
submit_events(site, [login_event("dave", "192.0.2.1"), login_event("dave", "192.0.2.1")])
ship()
tap.eq(len(alerts()), 4, "first logins of an account, then the same address again: no alert")
submit_events(site, [login_event("dave", "192.0.2.200")])
ship()
tap.eq(alerts()[4:], [["new_ip", "dave", "192.0.2.200", "warning"]], "login from an address never seen: alert")

# ------------------------------------------------------------ mass read, mass delete
for i in range(6):
    dc.lmtp_deliver("s@example.test", "bob", message("b%d" % i))
m = dc.imap_login("bob", "bobpw")
m.select("INBOX")
m.fetch("1:6", "(BODY.PEEK[])")
m.logout()
ship()
tap.eq(alerts()[5:], [["mass_read", "bob", "", "warning"]], "6 message bodies read in the window: alert")
m = dc.imap_login("bob", "bobpw")
m.select("INBOX")
m.store("1:5", "+FLAGS", "\\Deleted")
m.expunge()
m.logout()
ship()
tap.eq(alerts()[6:], [["mass_delete", "bob", "", "warning"]], "5 messages expunged in the window: alert")

# ------------------------------------------------------------ mail to the security address
with open(mailbox) as f:
    mail = f.read()
tap.eq(mail.count("----"), 7, "every alert was mailed once")
tap.ok("To: security@example.test" in mail and "Subject: [mailfort alert] totp_replay: erin" in mail,
       "alert mail names the rule and the account", mail[:600])
tap.eq(site.sql("SELECT count(*) FROM audit.alerts WHERE event_seq IS NULL"), [["0"]],
       "every alert points at the event that raised it")

# ------------------------------------------------------------ a backlog shipped late
# Failures two hours old arrive in the same batch as a new one (auditd was
# down, or behind): the burst is in no window that ends at the newest event,
# and must still raise the alert; failures spread out must not.
def ago(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - seconds))


spool_append(site, [auth_event("gina", "198.51.100.%d" % (40 + i), when=ago(7200 - 20 * i))
                    for i in range(4)]
             + [auth_event("hank", "198.51.100.%d" % (50 + i), when=ago(7200 - 900 * i))
                for i in range(3)]
             + [auth_event("gina", "198.51.100.60"), auth_event("hank", "198.51.100.61")])
ship()
tap.eq(alerts()[7:], [["failed_logins", "gina", "", "warning"]],
       "a burst two hours back in a late batch raises its alert; spread-out failures do not")
tap.eq(site.sql("SELECT a.detail->>'count', e.event_time < now() - interval '1 hour' "
                "FROM audit.alerts a JOIN mailfort.audit_events e "
                "ON e.node = a.event_node AND e.seq = a.event_seq WHERE a.username = 'gina'"),
       [["3", "t"]], "the alert points at the failure that reached the threshold")
dc.stop()
tap.done()
