#!/usr/bin/env python3
"""mailfortctl check: the posture check passes on the demo stack and finds
each planted fault.

The stack is the one scripts/demo runs (tests/harness/story.py: Dovecot and
Postfix with TLS as the examples ship it, PAM through pam_mailfort,
PgBouncer, mailfort-auditd).  "mailfortctl check" reads its Dovecot
configuration (doveconf), Postfix directory (postconf), PAM directory,
mailfort.conf, keys, spool and database: every rule passes and it exits 0.
Then a copy of the configuration gets one fault per rule:
  a protocol without mailfort_crypt, plaintext authentication allowed, a
  PAM service that authenticates mail without pam_mailfort (none at all,
  "sufficient pam_unix" before the mailfort stack, pam_mailfort with its
  failure ignored), TLS off (in Dovecot and in Postfix), a secret key others
  can read, a spool directory the group and others can enter, an event
  socket anyone can connect to, retention below the site's legal minimum,
  users allowed in without enrolment, an audit-trail role that can delete
  rows, statements without a time limit, shipped events without a recent
  checkpoint, and mailfort-auditd, then mailfort-spoold stopped;
each is reported as FAIL with a fix, and the exit status is 1.  The text
output and --json say the same.
"""
import json
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests", "harness"))
from mailfort import TMP, run, tap, write_config  # noqa: E402
from story import USERS, Stack  # noqa: E402


def check(site, conf=None, dovecot=None, postfix=None, pam=None, extra=()):
    argv = ["check", "--json", "--dovecot-config", dovecot or stack.dovecot.conf,
            "--postfix-config", postfix or stack.postfix.dir,
            "--pam-dir", pam or stack.pam.services] + list(extra)
    r = run([os.path.join(os.environ["MF_BUILD"], "tools", "mailfortctl"),
             "--config", conf or site.conf] + argv)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = {"checks": [], "ok": None, "raw": r.stdout + r.stderr}
    return r.returncode, doc


def failed(doc):
    return {c["rule"]: c for c in doc.get("checks", []) if c["status"] == "FAIL"}


stack = Stack("ctlcheck", say=tap.diag).start()
site = stack.site
# some events to ship: one login
m = stack.dovecot.imap()
m.login("bob", USERS["bob"] + stack.code("bob", fresh=True))
m.logout()
stack.auditd.wait_seq(1)

code, doc = check(site)
tap.ok(code == 0 and doc.get("ok") is True and not failed(doc),
       "every rule passes on the demo stack, exit 0", json.dumps(failed(doc) or doc, indent=1))
rules = {c["rule"] for c in doc.get("checks", [])}
want = {"plugins-imap", "plugins-pop3", "plugins-lmtp", "plaintext-auth-imap", "tls-imap",
        "pam-other", "pam-imap", "pam-smtp", "postfix-tls-auth-only", "postfix-tls-outbound",
        "key-master", "key-totp", "spool", "spool-socket", "spoold-running",
        "auditd-running", "audit-retention",
        "audit-checkpoint", "db-mailfort_admin", "db-public", "db-statement-timeout"}
tap.ok(want <= rules, "the check covers plugins, plaintext, PAM, TLS, keys, spool, auditd, "
       "retention, checkpoints and roles", sorted(want - rules))
r = site.ctl("check", "--dovecot-config", stack.dovecot.conf, "--postfix-config",
             stack.postfix.dir, "--pam-dir", stack.pam.services)
lines = r.stdout.splitlines()
tap.ok(r.returncode == 0 and len([ln for ln in lines if ln.startswith("PASS ")]) == len(rules)
       and lines[-1] == "%d passed, 0 failed" % len(rules),
       "the text output has one PASS line per rule and a summary", r.stdout[-2000:])

# ---------------------------------------------------------------- faults
bad = os.path.join(TMP, "bad")
shutil.rmtree(bad, ignore_errors=True)
os.makedirs(bad)
# Dovecot: pop3 without mailfort_crypt, plaintext allowed, TLS off
dconf = os.path.join(bad, "dovecot.conf")
with open(stack.dovecot.conf) as f:
    text = f.read()
# the first passdb ends every login (as examples/dovecot/conf.d/01-mailfort-auth.conf):
# a password-only passdb after it (the stock auth-system.conf.ext) is never asked
assert "passdb {\n  driver = pam\n" in text
text = text.replace("passdb {\n  driver = pam\n", "passdb {\n  driver = pam\n"
                    "  result_failure = return-fail\n  result_internalfail = return-fail\n", 1)
text += "\npassdb {\n  driver = passwd-file\n  args = /etc/dovecot/users\n}\n"
with open(dconf, "w") as f:
    f.write(text + "\nprotocol pop3 {\n  mail_plugins = notify mailfort_audit\n}\n"
            "disable_plaintext_auth = no\nssl = yes\n"
            # holes only doveconf -n shows: a remote block, trusted networks,
            # a mechanism that does not pass through PAM, the auth cache
            "remote 10.0.0.0/8 {\n  disable_plaintext_auth = no\n}\n"
            "login_trusted_networks = 10.0.0.0/8\n"
            "auth_mechanisms = plain login anonymous\n"
            "auth_cache_size = 1M\n")
# Postfix: AUTH without TLS, no outbound TLS
pdir = os.path.join(bad, "postfix")
shutil.copytree(stack.postfix.dir, pdir, ignore=shutil.ignore_patterns("queue", "data", "maillog"))
run(["postconf", "-c", pdir, "-e", "smtpd_tls_auth_only = no", "smtp_tls_security_level = none"],
    check=True)
# PAM: a service that authenticates mail with the password alone
pam = os.path.join(bad, "pam.d")
shutil.copytree(stack.pam.services, pam)
with open(os.path.join(pam, "pop3"), "w") as f:
    f.write("auth required /lib/x86_64-linux-gnu/security/pam_unix.so\n")
# /etc/pam.d/other as shipped: it logs (pam_warn), then denies
shutil.copy(os.path.join(os.environ["MF_SRC"], "examples", "pam.d", "other"),
            os.path.join(pam, "other"))
# ... one that lets the password alone end the stack before the mailfort stack
with open(os.path.join(pam, "smtp"), "w") as f:
    f.write("auth sufficient pam_unix.so\n@include mailfort-mail\n")
# ... one where pam_mailfort is stacked so that its failure is ignored
with open(os.path.join(pam, "doveadm"), "w") as f:
    f.write("auth [success=ok default=ignore] pam_mailfort.so\n"
            "auth required pam_unix.so\n")
# keys: hash.key readable by others; spool: the group and others may enter
# (the layout before mailfort-spoold); socket: anyone may connect
keys = os.path.join(bad, "keys")
shutil.copytree(site.keys, keys)
os.chmod(keys, 0o711)
os.chmod(os.path.join(keys, "hash.key"), 0o644)
spool = os.path.join(bad, "spool")
os.makedirs(spool)
os.chmod(spool, 0o2775)
sock_path = os.path.join(bad, "spool.sock")
bad_sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
bad_sock.bind(sock_path)
os.chmod(sock_path, 0o666)
# retention: 12 months, below the 24 a large site must keep (given below)
sections = {k: dict(v) for k, v in site.sections.items()}
sections["keys"]["dir"] = keys
sections["spool"]["dir"] = spool
sections["spool"]["socket"] = sock_path
sections["audit"] = dict(sections.get("audit", {}), retention_min=12)
sections.setdefault("pam", {})["not_enrolled"] = "allow"
# statements without a time limit (none in mailfort.conf, none in the database)
sections["database"]["statement_timeout"] = 0
bconf = os.path.join(bad, "mailfort.conf")
write_config(bconf, sections)
os.chmod(bconf, 0o644)
# an audit-trail role that can delete rows
site.sql("GRANT DELETE ON mailfort.audit_events TO mailfort_admin")

# events newer than the last checkpoint, with a limit of 1 s
m = stack.dovecot.imap()
m.login("alice", USERS["alice"] + stack.code("alice", fresh=True))
m.logout()
head = int(site.scalar("SELECT coalesce(max(last_seq), 0) FROM mailfort.audit_heads"))
stack.auditd.wait_seq(head + 1)
time.sleep(2.5)

code, doc = check(site, conf=bconf, dovecot=dconf, postfix=pdir, pam=pam,
                  extra=["--max-checkpoint-age", "1s", "--min-retention-months", "24"])
f = failed(doc)
tap.eq(code, 1, "with planted faults the check exits 1")
for rule, what in [("plugins-pop3", "a protocol without mailfort_crypt"),
                   ("plaintext-auth-imap", "plaintext authentication allowed"),
                   ("pam-pop3", "a PAM service without pam_mailfort"),
                   ("pam-smtp", "pam_unix sufficient before the mailfort stack"),
                   ("dovecot-filters", "plaintext allowed in a remote block"),
                   ("dovecot-trusted-networks", "login_trusted_networks beyond loopback"),
                   ("dovecot-auth-mechanisms", "a mechanism that bypasses PAM"),
                   ("dovecot-auth-cache", "the auth cache on with OTP"),
                   ("pam-not-enrolled", "not_enrolled = allow"),
                   ("pam-doveadm", "pam_mailfort whose failure is ignored"),
                   ("tls-imap", "TLS not required by Dovecot"),
                   ("postfix-tls-auth-only", "SMTP AUTH without TLS"),
                   ("postfix-tls-outbound", "outbound TLS off"),
                   ("key-hash", "a secret key others can read"),
                   ("spool", "a spool directory the group and others can enter"),
                   ("spool-socket", "an event socket anyone can connect to"),
                   ("audit-retention", "retention below the legal minimum"),
                   ("db-mailfort_admin", "a role that can delete audit rows"),
                   ("db-statement-timeout", "statements without a time limit"),
                   ("audit-checkpoint", "shipped events without a recent signed checkpoint")]:
    c = f.get(rule)
    tap.ok(c is not None and c.get("fix"), "FAIL %s with a fix: %s" % (rule, what),
           json.dumps(c or sorted(f), indent=1))
tap.ok("dovecot-passdb" not in f,
       "a passdb after one that ends every login is never asked: not reported",
       json.dumps(f.get("dovecot-passdb")))
tap.ok("pam-other" not in f, "the shipped /etc/pam.d/other (pam_warn, then pam_deny) passes",
       json.dumps(f.get("pam-other")))
tap.ok("pam-imap" not in f and "plugins-imap" not in f and "key-master" not in f,
       "rules that still hold keep passing", sorted(f))
bad_sock.close()
site.sql("REVOKE DELETE ON mailfort.audit_events FROM mailfort_admin")
code, doc = check(site, extra=["--min-retention-months", "24"])
tap.ok(code == 0 and not failed(doc),
       "the default retention (24 months) meets a 24-month minimum", sorted(failed(doc)))

# Postfix, service by service in master.cf: main.cf right (AUTH only after
# STARTTLS), AUTH on every smtpd, the port-25 one told -o smtpd_tls_auth_only=no,
# submission sent to Cyrus SASL
pdir2 = os.path.join(bad, "postfix2")
shutil.copytree(stack.postfix.dir, pdir2,
                ignore=shutil.ignore_patterns("queue", "data", "maillog"))
overrides = run(["postconf", "-c", pdir2, "-P"], check=True).stdout
smtpds = ["/".join(ln.split()[:2]) for ln in run(["postconf", "-c", pdir2, "-M"],
                                                  check=True).stdout.splitlines()
          if ln.split()[7:8] == ["smtpd"]]
sub = [s_ for s_ in smtpds if "%s/smtpd_sasl_auth_enable = yes" % s_ in overrides]
plain = [s_ for s_ in smtpds if s_ not in sub]
tap.ok(sub != [] and plain != [], "the stack has a submission service and a port-25 smtpd",
       repr(smtpds) + overrides)
run(["postconf", "-c", pdir2, "-e", "smtpd_sasl_auth_enable = yes", "smtpd_tls_auth_only = yes"],
    check=True)
code, doc = check(site, postfix=pdir2)
f = failed(doc)
tap.ok(not [r_ for r_ in f if r_.startswith("postfix-")],
       "AUTH on every smtpd with main.cf's smtpd_tls_auth_only = yes passes", sorted(f))
for s_ in plain:
    run(["postconf", "-c", pdir2, "-P", "%s/smtpd_tls_auth_only=no" % s_], check=True)
for s_ in sub:
    run(["postconf", "-c", pdir2, "-P", "%s/smtpd_sasl_type=cyrus" % s_], check=True)
code, doc = check(site, postfix=pdir2)
f = failed(doc)
tap.ok(code == 1 and "postfix-tls-auth-only" not in f and all(
    f.get("postfix-%s-auth" % s_, {}).get("fix") for s_ in plain + sub),
    "each smtpd service of master.cf is judged with its -o overrides over main.cf: AUTH "
    "without TLS (-o smtpd_tls_auth_only=no) and AUTH through Cyrus are reported",
    json.dumps(f, indent=1))

# the same password-only passdb after one that lets failures go on: reachable
reach = os.path.join(bad, "dovecot-reach.conf")
with open(stack.dovecot.conf) as f:
    text = f.read()
with open(reach, "w") as f:
    f.write(text + "\npassdb {\n  driver = passwd-file\n  args = /etc/dovecot/users\n}\n")
code, doc = check(site, dovecot=reach)
f = failed(doc)
tap.ok(code == 1 and "dovecot-passdb" in f,
       "a password-only passdb that failures reach is reported", sorted(f))

stack.auditd.stop()
code, doc = check(site)
f = failed(doc)
tap.ok(code == 1 and set(f) == {"auditd-running"},
       "with mailfort-auditd stopped, that (and only that) is reported", sorted(f))
site.stop_spoold()
code, doc = check(site)
f = failed(doc)
tap.ok(code == 1 and set(f) == {"auditd-running", "spoold-running", "spool-socket"},
       "with mailfort-spoold stopped too, it and its missing socket are reported", sorted(f))
stack.stop()
tap.done()
