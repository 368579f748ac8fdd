"""pam_mailfort test helpers: PAM services under pam_wrapper, enrolment, codes, events.

    from mailfort import Site, tap
    from mfpam import PamSetup, totp_code, read_events

    site = Site("pam-x", extra={"pam": {"max_failures": 3}})
    pam = PamSetup(site, passwords={"alice": "secret"})
    secret = pam.enroll("alice")
    rc, msg = pam.auth("imap", "alice", "secret" + totp_code(secret))

The password module in the test stacks is pam_exec with expose_authtok and a
small checker script, so it checks exactly the PAM_AUTHTOK that
pam_mailfort handed on (like pam_unix use_first_pass); each call of it is
logged to pam.calls, so a test can see whether the password was checked.
"""

import base64
import hashlib
import hmac
import os
import re
import struct
import subprocess
import time
import urllib.parse

from mailfort import BUILD, SRC, run

PAM_WRAPPER_MODULES = "/usr/lib/x86_64-linux-gnu/pam_wrapper"
PAM_MODULES = "/lib/x86_64-linux-gnu/security"

CHECKER = """#!/usr/bin/python3
# test password module: compares PAM_AUTHTOK (stdin, from pam_exec) with a file
import os, sys
here = os.path.dirname(os.path.abspath(__file__))
tok = sys.stdin.buffer.read().split(b"\\0")[0].rstrip(b"\\n").decode("utf-8", "replace")
user = os.environ.get("PAM_USER", "")
with open(os.path.join(here, "pam.calls"), "a") as f:
    f.write(user + "\\n")
want = {}
with open(os.path.join(here, "passwords")) as f:
    for line in f:
        if ":" in line:
            u, p = line.rstrip("\\n").split(":", 1)
            want[u] = p
sys.exit(0 if user in want and want[user] == tok else 1)
"""

# pam_strerror texts pamtester prints, by PAM code name
PAM_TEXT = {
    "PAM_AUTH_ERR": "Authentication failure",
    "PAM_AUTHINFO_UNAVAIL": "Authentication service cannot retrieve authentication info",
}


def pam_module_path():
    return os.path.join(BUILD, "pam-module", ".libs", "pam_mailfort.so")


def totp_code(secret_b32, t=None, digits=6, period=30):
    """RFC 6238 code for time t (default now), computed independently of liboath."""
    t = time.time() if t is None else t
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(t) // period), hashlib.sha1).digest()
    off = mac[-1] & 15
    n = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return str(n % (10 ** digits)).zfill(digits)


def oathtool_code(secret_b32, t):
    """The same through oathtool (the reference implementation), for time t."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))
    r = run(["oathtool", "--totp", "-b", "-N", stamp, secret_b32], check=True)
    return r.stdout.strip()


def wait_fresh_step(period=30, margin=4):
    """Sleep until at least margin seconds remain in the current step."""
    left = period - (time.time() % period)
    if left < margin:
        time.sleep(left + 0.2)


def read_events(spool_dir):
    """Every record in the spool (segments events.N in order), as dicts."""
    import json

    out = []
    if not os.path.isdir(spool_dir):
        return out
    segs = []
    for name in os.listdir(spool_dir):
        m = re.match(r"^events\.(\d+)$", name)
        if m:
            segs.append((int(m.group(1)), name))
    for _, name in sorted(segs):
        with open(os.path.join(spool_dir, name), "rb") as f:
            data = f.read()
        pos = 16 if data[:4] == b"MFSG" else 0  # segment header
        while pos + 24 <= len(data):
            if data[pos:pos + 4] != b"MFSR":
                break
            (length,) = struct.unpack("<I", data[pos + 4:pos + 8])
            payload = data[pos + 24:pos + 24 + length]
            if len(payload) < length:
                break
            out.append(json.loads(payload.decode("utf-8")))
            pos += 24 + length
    return out


def spool_bytes(spool_dir):
    data = b""
    for name in sorted(os.listdir(spool_dir)):
        with open(os.path.join(spool_dir, name), "rb") as f:
            data += f.read()
    return data


class PamSetup:
    """PAM service files for a Site, a password file, and ways to log in."""

    def __init__(self, site, passwords=None, rhost="192.0.2.7"):
        self.site = site
        self.dir = os.path.join(site.dir, "pam")
        self.services = os.path.join(self.dir, "pam.d")
        os.makedirs(self.services, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.checker = os.path.join(self.dir, "checkpw")
        with open(self.checker, "w") as f:
            f.write(CHECKER)
        os.chmod(self.checker, 0o755)
        self.calls_file = os.path.join(self.dir, "pam.calls")
        open(self.calls_file, "w").close()
        os.chmod(self.calls_file, 0o666)
        self.rhost = rhost
        self.set_passwords(passwords or {})
        self.write_service("other", ["auth required %s/pam_deny.so" % PAM_MODULES,
                                     "account required %s/pam_deny.so" % PAM_MODULES])
        self.mail_stack("imap")

    def set_passwords(self, passwords):
        self.passwords = dict(passwords)
        path = os.path.join(self.dir, "passwords")
        with open(path, "w") as f:
            for u, p in self.passwords.items():
                f.write("%s:%s\n" % (u, p))
        os.chmod(path, 0o644)

    def mf(self, *args):
        return "%s config=%s %s" % (pam_module_path(), self.site.conf, " ".join(args))

    def password_module(self):
        return "%s/pam_exec.so expose_authtok quiet %s" % (PAM_MODULES, self.checker)

    def write_service(self, name, lines):
        path = os.path.join(self.services, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o644)
        os.chmod(self.services, 0o755)
        return path

    def mail_stack(self, service, apppass=True, extra_args=""):
        """The Dovecot stack from examples/pam.d: app passwords first, then
        password+code, the password module, failure counting, reset."""
        lines = ["auth optional %s/pam_set_items.so" % PAM_WRAPPER_MODULES]
        if apppass:
            lines.append("auth [success=done ignore=ignore default=die] %s"
                         % self.mf("apppass", extra_args))
        lines += [
            "auth requisite %s" % self.mf("defer", extra_args),
            "auth [success=1 default=bad] %s" % self.password_module(),
            "auth [default=die] %s" % self.mf("authfail"),
            "auth sufficient %s" % self.mf("authsucc"),
            "auth requisite %s/pam_deny.so" % PAM_MODULES,
            "account required %s/pam_permit.so" % PAM_MODULES,
        ]
        return self.write_service(service, lines)

    def example_services(self):
        """examples/pam.d as a sysadmin installs it, for pam_wrapper: module
        paths made absolute, pam_mailfort given this site's configuration,
        pam_unix (the accounts here are not in /etc/passwd) replaced by the
        test password module, which also takes the password pam_mailfort
        handed on.  Returns the names of the services written."""
        names = []
        src = os.path.join(SRC, "examples", "pam.d")

        def read(name):
            """The file's lines, each @include replaced by the included file
            (libpam reads those from /etc/pam.d, which pam_wrapper does not
            redirect)."""
            out = []
            with open(os.path.join(src, name)) as f:
                for line in f:
                    words = line.split()
                    if words and words[0] == "@include":
                        out += read(words[1])
                    else:
                        out.append(line.rstrip("\n"))
            return out

        for name in sorted(os.listdir(src)):
            if name.startswith("sshd"):
                continue
            lines = []
            for line in read(name):
                words = line.split()
                if words and not line.startswith("#"):
                    if "pam_mailfort.so" in line:
                        line = line.replace("pam_mailfort.so", self.mf(), 1)
                    elif words[0] == "auth" and "pam_unix.so" in line:
                        line = re.sub(r"pam_unix\.so.*$", self.password_module(), line)
                    elif "pam_unix.so" in line:
                        line = line.replace("pam_unix.so", "%s/pam_permit.so" % PAM_MODULES)
                    else:
                        line = re.sub(r"(\s)(pam_\w+\.so)", r"\1%s/\2" % PAM_MODULES, line)
                lines.append(line)
            self.write_service(name, lines)
            names.append(name)
        return names

    def prompt_stack(self, service):
        """The sshd stack: lock check and password first, then the code is asked for."""
        lines = [
            "auth optional %s/pam_set_items.so" % PAM_WRAPPER_MODULES,
            "auth requisite %s" % self.mf("preauth"),
            "auth [success=1 default=bad] %s" % self.password_module(),
            "auth [default=die] %s" % self.mf("authfail"),
            "auth requisite %s" % self.mf("prompt"),
            "auth sufficient %s" % self.mf("authsucc"),
            "auth requisite %s/pam_deny.so" % PAM_MODULES,
            "account required %s/pam_permit.so" % PAM_MODULES,
        ]
        return self.write_service(service, lines)

    def env(self):
        e = dict(os.environ)
        e.update({"LD_PRELOAD": "libpam_wrapper.so", "PAM_WRAPPER": "1",
                  "PAM_WRAPPER_SERVICE_DIR": self.services, "PAM_RHOST": self.rhost})
        e.pop("PAM_WRAPPER_DEBUGLEVEL", None)
        return e

    def argv(self, service, user):
        return ["pamtester", service, user, "authenticate"]

    def auth(self, service, user, *answers, timeout=60):
        """Run pam_authenticate; returns (ok, message) where message is
        pamtester's last line (the pam_strerror text on failure)."""
        r = subprocess.run(self.argv(service, user), input="".join(a + "\n" for a in answers),
                           capture_output=True, text=True, env=self.env(), timeout=timeout)
        text = (r.stdout + r.stderr).replace("Password: ", "").replace(
            "Verification code: ", "").strip()
        last = text.splitlines()[-1] if text else ""
        return r.returncode == 0, last

    def acct(self, service, user):
        """Run pam_acct_mgmt; returns (ok, message)."""
        r = subprocess.run(["pamtester", service, user, "acct_mgmt"], capture_output=True,
                           text=True, env=self.env(), timeout=60)
        text = (r.stdout + r.stderr).strip()
        return r.returncode == 0, text.splitlines()[-1] if text else ""

    def start(self, service, user, *answers):
        """Start a login in the background (for races); returns the Popen."""
        p = subprocess.Popen(self.argv(service, user), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=self.env())
        return p, "".join(a + "\n" for a in answers)

    def calls(self):
        with open(self.calls_file) as f:
            return len(f.read().splitlines())

    def enroll(self, user, reset_step=True):
        """Enrol user through mailfortctl (pending, then --confirm); returns the base32 secret.

        The confirming code's step is recorded (it cannot be replayed); with
        reset_step the test resets it so the current code can be used at once."""
        r = self.site.ctl("totp", "enroll", user, "--no-qr", check=True)
        m = re.search(r"otpauth://totp/[^?\s]+\?secret=([A-Z2-7]+)&", r.stdout)
        if not m:
            raise RuntimeError("no otpauth URI in: %s" % r.stdout)
        secret = m.group(1)
        wait_fresh_step()
        self.site.ctl("totp", "enroll", user, "--confirm", totp_code(secret), check=True)
        if reset_step:
            self.reset_step(user)
        return secret

    def reset_step(self, user):
        self.site.sql("UPDATE mailfort.accounts SET totp_last_step = 0 WHERE username = :'u'",
                      params={"u": user})

    def account(self, user, cols="failed_count, locked_until IS NOT NULL AND locked_until > now()"):
        rows = self.site.sql("SELECT %s FROM mailfort.accounts WHERE username = :'u'" % cols,
                             params={"u": user})
        return rows[0] if rows else None

    def events(self, **match):
        evs = [e for e in read_events(self.site.spool) if e.get("type") == "auth"]
        return [e for e in evs if all(e.get(k) == v for k, v in match.items())]


def uri_secret(text):
    m = re.search(r"otpauth://totp/([^?\s]+)\?(\S+)", text)
    if not m:
        return None, {}
    q = urllib.parse.parse_qs(m.group(2))
    return urllib.parse.unquote(m.group(1)), {k: v[0] for k, v in q.items()}
