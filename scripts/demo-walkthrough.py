#!/usr/bin/env python3
"""The walk-through scripts/demo runs (see scripts/demo; not meant to be run alone)."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests", "harness"))
from story import USERS, Stack, Story  # noqa: E402

WIDTH = 78


def say(text):
    print("    " + text, flush=True)


def step(n, title):
    print("\n" + ("[%d] %s " % (n, title)).ljust(WIDTH, "-"), flush=True)


def hexdump(data, lines=6):
    out = []
    for off in range(0, min(len(data), 16 * lines), 16):
        chunk = data[off:off + 16]
        hx = " ".join("%02x" % b for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append("%08x  %-47s  %s" % (off, hx, asc))
    return out


def main():
    wait = "--no-wait" not in sys.argv
    stopping = {"now": False}

    def on_signal(_sig, _frm):
        stopping["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print("mailfort demo: the whole stack on 127.0.0.1, in %s" % os.environ["MF_TEST_RUN"])
    stack = Stack("demo", say=say)
    try:
        stack.start()
        story = Story(stack, say=say)

        step(1, "alice sends bob a report with a PDF through authenticated submission")
        r = story.send_report()
        say("login with the password alone: %s" % r["password_only"])
        say("login with password + current 6-digit code: accepted")
        say("message %s %s" % (r["message_id"], "delivered to bob" if r["delivered"] else "NOT delivered"))

        step(2, "mail from outside: a spam (over STARTTLS), and an attachment over the size limit")
        r = story.outside_mail()
        say("spam:      %s %s" % (r["spam"][0], r["spam"][1]))
        if r["held"]:
            say("           (held in Postfix's hold queue: %s)" % ", ".join(q[1] for q in r["held"]))
        say("oversized: %s %s" % (r["oversized"][0], r["oversized"][1]))

        step(3, "bob reads the report over IMAP with password + code")
        r = story.read_report()
        say("login with a wrong code: %s" % r["wrong_code"])
        say("login with password + %s (client 'Thunderbird 128.4'): found %d message(s)"
            % (r["code"], r["found"]))
        say("the same code again: %s" % r["replay"])
        received = r["received"]

        step(4, "what is stored on disk")
        r = story.on_disk()
        say("the message file on disk (first bytes):")
        for line in hexdump(r["stored"]):
            say("  " + line)
        say("what bob's client received (first lines):")
        for line in received.decode(errors="replace").splitlines()[:8]:
            say("  " + line)
        say("files under bob's mail home containing the subject marker '%s': %d of %d"
            % (story.marker, len(r["leaks"]), r["files"]))

        step(5, "the audit trail, as an auditor sees it (schema audit)")
        r = story.audit_trail()
        say("audit.auth_events (every attempt, through PAM):")
        for row in r["auth"]:
            say("  " + " | ".join(row))
        say("audit.logins (user | service | address | client | TLS):")
        for row in r["logins"]:
            say("  " + " | ".join(row))
        say("audit.message_access (reads):")
        for row in r["reads"]:
            say("  " + " | ".join(row))
        say("audit.mail_verdicts (action | score | sender | TLS of the SMTP session):")
        for row in r["verdicts"]:
            say("  " + " | ".join(row))
        say("audit.alerts (after six logins with a wrong code):")
        for row in r["alerts"]:
            say("  " + " | ".join(row))
        say("mailfortctl audit verify:")
        for line in r["verify"][1].splitlines():
            say("  " + line)

        step(6, "mailfortctl check: the posture of this stack, as an auditor would run it")
        r = stack.site.ctl("check", "--dovecot-config", stack.dovecot.conf,
                           "--postfix-config", stack.postfix.dir, "--pam-dir", stack.pam.services)
        for line in r.stdout.splitlines():
            say(line)

        if not wait:
            return 0
        dc, pf = stack.dovecot, stack.postfix
        print("\n" + "-" * WIDTH)
        ca = stack.ca.cert
        print("The stack keeps running. Connect a mail client (loopback only, TLS required):")
        print("  IMAP       127.0.0.1:%d  STARTTLS    SMTP submission 127.0.0.1:%d  STARTTLS,"
              " normal password" % (dc.imap_port, pf.submission_port))
        print("  The servers' certificate (for localhost, mx.example.test, 127.0.0.1) is issued by")
        print("  a throwaway CA made for this demo: %s" % ca)
        print("  Check it:    openssl s_client -starttls imap -connect 127.0.0.1:%d -CAfile %s"
              % (dc.imap_port, ca))
        print("               (look for 'Verify return code: 0 (ok)')")
        print("  Thunderbird: Settings > Privacy & Security > Certificates > Manage Certificates >")
        print("               Authorities > Import %s, tick 'identify websites'" % ca)
        print("               (or accept the exception Thunderbird offers on first connect)")
        print("  mutt:        set ssl_ca_certificates_file=%s" % ca)
        for user, pw in USERS.items():
            print("  user %-6s password %s followed by the current code" % (user, pw))
            print("             code now: oathtool --totp -b %s" % stack.secrets[user])
        print("  an app password instead: %s/build-demo/tools/mailfortctl --config %s apppass add bob --label laptop"
              % (os.environ["MF_SRC"], stack.site.conf))
        print("Stop with Ctrl-C or 'scripts/demo stop'.", flush=True)
        while not stopping["now"]:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the demo stack", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
