#!/usr/bin/env python3
"""pam_mailfort: odd user names.

A password module or directory that ignores letter case would accept
"Alice" with alice's password; under not_enrolled = allow the second factor
must not be skipped for such a name.  Over-long names, names with control
characters and names that are not UTF-8 are refused without a crash, and
the log line cannot be forged with them.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from mfpam import PamSetup, totp_code, wait_fresh_step  # noqa: E402

# The test password module compares names exactly; list every spelling so
# that it behaves like one that ignores case.
PASSWORDS = {"alice": "pw-alice", "Alice": "pw-alice", "ALICE": "pw-alice", "bert": "pw-bert"}

site = Site("pam-names", extra={"pam": {"not_enrolled": "allow"}})
pam = PamSetup(site, passwords=PASSWORDS)
secret = pam.enroll("alice")

# ------------------------------------------------------------ letter case
wait_fresh_step()
ok, msg = pam.auth("imap", "alice", "pw-alice" + totp_code(secret))
tap.ok(ok, "alice logs in with password and code", msg)
for name in ["Alice", "ALICE"]:
    calls = pam.calls()
    ok, msg = pam.auth("imap", name, "pw-alice")
    tap.ok(not ok, "%s without a code is refused under not_enrolled = allow" % name, msg)
    tap.eq(pam.calls(), calls, "%s: the password was not even checked" % name)
    tap.eq([(e.get("result"), e.get("reason")) for e in pam.events(user=name)],
           [("fail", "name_case")], "%s: the event says why" % name)
ok, msg = pam.auth("imap", "bert", "pw-bert")
tap.ok(ok, "a name without any account still logs in with the password under allow", msg)

# ------------------------------------------------------------ odd names
site.set("pam", "not_enrolled", "require")
for what, name in [("a 4000-character name", "x" * 4000),
                   ("a name with a newline", "eve\nmailfort: forged line"),
                   ("a name that is not UTF-8", b"m\xffx")]:
    env = pam.env()
    argv = [a.encode() if isinstance(a, str) else a for a in pam.argv("imap", "x")]
    argv[2] = name.encode() if isinstance(name, str) else name
    r = subprocess.run(argv, input=b"pw123456\n", capture_output=True, env=env, timeout=60)
    tap.ok(r.returncode != 0 and r.returncode < 128, "%s is refused without a crash" % what,
           (r.stdout + r.stderr).decode("utf-8", "replace")[-200:])

tap.done()
