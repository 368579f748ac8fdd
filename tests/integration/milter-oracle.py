#!/usr/bin/env python3
"""Differential oracle, short run: no program escapes mailfort-milter's attachment policy.

Runs tests/oracle/runner.py on 200 generated messages (archives of every
format and method the tools here write, leading junk, passwords, nesting,
compressed single files, uuencode / yEnc / BinHex in text, odd names), each
through the real milter over its socket, the first 15 also through Postfix
-> milter -> Dovecot and read back over IMAP.  Every file that Python's
email package, bsdtar, 7z or unzip get out of a delivered message is
checked; a program the milter let through unflagged fails the test with
the seed and mutation chain to replay it.  The long campaign is
tests/oracle/campaign (docs/ATTACHMENTS.md).
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import tap  # noqa: E402

runner = os.path.join(os.environ["MF_SRC"], "tests", "oracle", "runner.py")
seed = os.environ.get("ORACLE_SEED", "1")
r = subprocess.run([sys.executable, runner, "--count", "200", "--seed", seed, "--deliver", "15",
                    "--quiet"], capture_output=True, text=True, timeout=600)
summary = [ln for ln in r.stdout.splitlines() if ln.startswith("oracle:")]
tap.ok(summary and " 0 failures" in summary[-1] and r.returncode == 0,
       "200 mutated messages: no reader extracts a program the milter let through",
       r.stdout[-6000:] + r.stderr[-3000:])
import re  # noqa: E402
real = re.search(r"(\d+) delivered through Postfix and Dovecot", summary[-1] if summary else "")
tap.ok(real and int(real.group(1)) >= 15,
       "at least 15 of them (and every suspicious one) went through Postfix and Dovecot and "
       "were read back over IMAP", summary)
tap.ok(summary and "held" in summary[-1] and "delivered" in summary[-1],
       "the run both held (uninspectable or blocked) and delivered messages", summary)
tap.done()
