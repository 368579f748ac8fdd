#!/usr/bin/env python3
"""mailfort_audit against a real Dovecot: every action of an IMAP session
becomes exactly the expected audit rows, with the right fields.

An LMTP delivery, then an imaplib session that sends IMAP ID, logs in,
fetches a body twice (one read), fetches a header only (no read), appends,
creates a mailbox, copies, moves, flags, sets \\Deleted, expunges, renames
and deletes a mailbox, logs out.  mailfort-auditd ships the spool and the
rows are compared one by one.  Then the session policy: an idle session and
an old session are closed with a BYE saying why, and the logout event
records it.  Also a POP3 RETR (read) and a session without ID ("unknown").
"""
import os
import poplib
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from auditlib import Auditd, audit_dovecot, events, message  # noqa: E402

site = Site("audit-session", extra={"spool": {"node": "n1"}})
auditd = Auditd(site)
dc = audit_dovecot("se", site)  # short: Dovecot socket paths are limited
dc.start()

# ------------------------------------------------------------ one full session
dc.lmtp_deliver("s@example.test", "alice", message("first"))
dc.lmtp_deliver("s@example.test", "alice", message("second"))

m = dc.imap()
typ, _ = m._simple_command("ID", '("name" "TestClient" "version" "1.2")')
tap.eq(typ, "OK", "IMAP ID accepted before login")
m.login("alice", "alicepw")
m.select("INBOX")
m.fetch("1", "(BODY[])")
m.fetch("1", "(BODY.PEEK[])")
m.fetch("2", "(BODY.PEEK[HEADER])")
m.append("INBOX", None, None, message("third"))
m.create("Work")
m.copy("1", "Work")
m.uid("MOVE", "2", "Work")
m.store("1", "+FLAGS", "\\Flagged")
m.store("1", "+FLAGS", "\\Deleted")
m.expunge()
m.rename("Work", "Archive")
m.create("Tmp")
m.delete("Tmp")
m.logout()
time.sleep(0.5)
auditd.once()

ev = events(site)
got = []
for e in ev:
    got.append((e["type"], e.get("service"), e.get("mailbox"), e.get("uid"), e.get("message_id"),
                e.get("from_mailbox"), e.get("new_name"), e.get("action")))
F, S, T = "<first@example.test>", "<second@example.test>", "<third@example.test>"
want = [
    ("mailbox_create", "lmtp", "INBOX", None, None, None, None, None),  # autocreated INBOX
    ("save", "lmtp", "INBOX", 1, F, None, None, None),
    ("save", "lmtp", "INBOX", 2, S, None, None, None),
    ("login", "imap", None, None, None, None, None, None),
    ("read", "imap", "INBOX", 1, F, None, None, None),
    ("flags", "imap", "INBOX", 1, F, None, None, "change"),  # \Seen set by the FETCH
    ("save", "imap", "INBOX", 3, T, None, None, None),
    ("mailbox_create", "imap", "Work", None, None, None, None, None),
    ("copy", "imap", "Work", 1, F, "INBOX", None, None),
    ("move", "imap", "Work", 2, S, "INBOX", None, None),
    ("flags", "imap", "INBOX", 1, F, None, None, "change"),
    ("flags", "imap", "INBOX", 1, F, None, None, "delete"),
    ("expunge", "imap", "INBOX", 1, F, None, None, None),
    ("mailbox_rename", "imap", "Work", None, None, None, "Archive", None),
    ("mailbox_create", "imap", "Tmp", None, None, None, None, None),
    ("mailbox_delete", "imap", "Tmp", None, None, None, None, None),
    ("logout", "imap", None, None, None, None, None, None),
]
tap.eq(got, want, "exactly the expected events, in order")
tap.eq([e["_seq"] for e in ev], list(range(1, len(ev) + 1)), "seq 1..n without gaps")

login = next(e for e in ev if e["type"] == "login")
tap.eq((login["user"], login["client"], login["client_version"]), ("alice", "TestClient", "1.2"),
       "login: user and IMAP ID client name and version")
tap.eq((login["ip"], login["local_ip"], login["local_port"], login["tls"], login["mech"]),
       ("127.0.0.1", "127.0.0.1", dc.imap_port, False, "PLAIN"),
       "login: remote/local address, local port, no TLS, mechanism")
tap.ok(isinstance(login.get("port"), int) and login["port"] > 0, "login: remote port")
sess = login["session"]
tap.ok(sess and all(e["session"] == sess for e in ev if e["service"] == "imap"),
       "every imap event carries the login's session id")
tap.ok(all(e["node"] == "n1" and e["time"].endswith("Z") for e in ev), "node and UTC time on every event")
logout = ev[-1]
tap.eq((logout["reason"], logout["reads"]), ("logout", 1), "logout: reason and read count")
tap.ok(logout["bytes_in"] > 100 and logout["bytes_out"] > 1000 and logout["duration_ms"] >= 0,
       "logout: bytes in/out and duration", logout)

rows = site.sql("SELECT action, uid FROM audit.message_access WHERE message_id = :'m' "
                "ORDER BY node, seq", params={"m": F})
tap.eq([r[0] for r in rows], ["save", "read", "flags", "copy", "flags", "flags", "expunge"],
       "audit.message_access: the first message's whole history by Message-ID")
tap.eq(site.sql("SELECT type, client FROM audit.logins ORDER BY event_time"),
       [["login", "TestClient"], ["logout", ""]], "audit.logins shows the client")
tap.eq(site.sql("SELECT action, mailbox, new_name FROM audit.mailbox_changes WHERE action = 'mailbox_rename'"),
       [["mailbox_rename", "Work", "Archive"]], "audit.mailbox_changes: the rename")
r = site.ctl("audit", "search", "--user", "alice", "--event", "read", "--format", "csv")
tap.ok(r.returncode == 0 and r.stdout.count("\n") == 2 and "first@example.test" in r.stdout,
       "mailfortctl audit search --event read --format csv", r.stdout + r.stderr)
r = site.ctl("audit", "search", "--message-id", "second@example.test", "--format", "json")
tap.ok(r.returncode == 0 and len(r.stdout.splitlines()) == 2 and '"move"' in r.stdout,
       "mailfortctl audit search --message-id (save and move)", r.stdout + r.stderr)
r = site.ctl("audit", "search", "--user", "alice", "--event", "read", "--since", "1h",
             "--until", "2999-01-01T00:00:00Z", "--format", "csv")
tap.ok(r.returncode == 0 and r.stdout.count("\n") == 2,
       "audit search --since an age --until an ISO time", r.stdout + r.stderr)
r = site.ctl("audit", "search", "--user", "alice", "--event", "read", "--since", "yesterday",
             "--format", "csv")
tap.ok(r.returncode == 0 and r.stdout.count("\n") == 2, "audit search --since yesterday",
       r.stdout + r.stderr)
r = site.ctl("audit", "search", "--since", "last tuesday")
tap.ok(r.returncode == 2 and "--since: 'last tuesday' is not a time" in r.stderr,
       "a bad --since is refused before connecting, naming the value", r.stderr)
for day in ("2026-02-30", "2026-04-31", "2026-02-29"):
    r = site.ctl("audit", "search", "--since", day)
    tap.ok(r.returncode == 2 and "--since: '%s' is not a time" % day in r.stderr,
           "a day that does not exist (%s) is refused before connecting" % day, r.stderr)
r = site.ctl("audit", "search", "--since", "2028-02-29", "--user", "nobody-here")
tap.ok(r.returncode == 0, "29 February of a leap year is a day", r.stdout + r.stderr)
r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0 and r.stdout.strip().endswith("OK"), "untouched log verifies OK", r.stdout + r.stderr)


def new_events(after):
    auditd.once()
    return [e for e in events(site) if e["_seq"] > after]


last = ev[-1]["_seq"]

# ------------------------------------------------------------ no IMAP ID, POP3 read
m = dc.imap_login("alice", "alicepw")
m.logout()
p = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=30)
p.user("alice")
p.pass_("alicepw")
p.retr(1)
p.quit()
time.sleep(0.3)
ev = new_events(last)
tap.eq([e["type"] for e in ev], ["login", "logout", "login", "read", "flags", "logout"],
       "imap login without ID, pop3 login, RETR (sets \\Seen at QUIT), logout")
tap.eq(ev[0].get("client"), "unknown", "a client that sent no ID is recorded as 'unknown'")
tap.eq((ev[3]["service"], ev[3]["reason"], ev[3]["message_id"]), ("pop3", "RETR", T),
       "POP3 RETR is a read with its Message-ID")
last = ev[-1]["_seq"]


def read_until_close(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def raw_login():
    s = socket.create_connection(("127.0.0.1", dc.imap_port), timeout=10)
    s.recv(4096)
    s.sendall(b"a LOGIN alice alicepw\r\n")
    time.sleep(0.3)
    s.recv(4096)
    return s


# ------------------------------------------------------------ idle timeout
site.set("audit", "session_idle_timeout", "3s")
s = raw_login()
t0 = time.time()
data = read_until_close(s, 12)
s.close()
tap.ok(b"* BYE" in data and b"idle" in data, "an idle session gets a BYE saying why", data)
tap.ok(2.5 <= time.time() - t0 <= 10, "... after about the idle timeout (%.1fs)" % (time.time() - t0))
time.sleep(0.3)
ev = new_events(last)
tap.eq([(e["type"], e.get("reason")) for e in ev], [("login", None), ("logout", "idle_timeout")],
       "the logout event records reason idle_timeout")
last = ev[-1]["_seq"]

# an active session is not idle
s = raw_login()
for i in range(4):
    time.sleep(1)
    s.sendall(b"n%d NOOP\r\n" % i)
s.settimeout(2)
alive = b"n3 OK" in read_until_close(s, 1)
s.sendall(b"z LOGOUT\r\n")
read_until_close(s, 3)
s.close()
tap.ok(alive, "a session sending commands more often than the idle timeout stays open")
time.sleep(0.3)
ev = new_events(last)
tap.eq([(e["type"], e.get("reason")) for e in ev], [("login", None), ("logout", "logout")],
       "... and ends with a normal logout")
last = ev[-1]["_seq"]

# ------------------------------------------------------------ maximum lifetime
site.set("audit", "session_idle_timeout", "0")
site.set("audit", "session_max_lifetime", "3s")
s = raw_login()
t0 = time.time()
data = b""
for i in range(8):
    try:
        s.sendall(b"n%d NOOP\r\n" % i)
    except OSError:
        break
    data += read_until_close(s, 1)
    if b"BYE" in data:
        break
s.close()
tap.ok(b"* BYE" in data and b"older than" in data, "an old session gets a BYE saying why", data)
tap.ok(2.5 <= time.time() - t0 <= 7, "... at the maximum lifetime (%.1fs)" % (time.time() - t0))
time.sleep(0.3)
ev = new_events(last)
tap.eq([(e["type"], e.get("reason")) for e in ev], [("login", None), ("logout", "max_lifetime")],
       "the logout event records reason max_lifetime")

r = site.ctl("audit", "verify")
tap.ok(r.returncode == 0, "the whole trail still verifies", r.stdout + r.stderr)

# ------------------------------------------------------------ fail closed
site.set("audit", "session_max_lifetime", "0")
site.stop_spoold()
try:
    m = dc.imap_login("alice", "alicepw")  # Dovecot: "OK Logged in, but initialization failed" + BYE
    m.select("INBOX")
    refused = False
except Exception:  # noqa: BLE001 - imaplib raises several kinds
    refused = True
tap.ok(refused, "no event receiver, no session: the session is closed before any mailbox is opened")
want = "mailfort_audit: event socket %s: cannot connect" % site.socket
for _ in range(50):  # the log line may be written just after the BYE
    if want in dc.log_text():
        break
    time.sleep(0.1)
tap.ok(want in dc.log_text(), "Dovecot's log names the event socket that could not be reached")
site.start_spoold()
m = dc.imap_login("alice", "alicepw")
m.logout()
tap.ok(True, "with the receiver back, logins work again")
log = dc.log_text()
tap.ok("mailfort_audit" not in log or "could not be recorded" not in log, "no spool failures in Dovecot's log")
dc.stop()
tap.done()
