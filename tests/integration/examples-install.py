#!/usr/bin/env python3
"""examples/ dropped into a stock Debian 12 /etc: every protocol loads both
mailfort plugins, every authenticating service goes through pam_mailfort.

The stock trees are the packages' own: Dovecot's configuration as
dovecot-core (and the imapd, pop3d, lmtpd, submissiond, managesieved, sieve
packages) ship it under /usr/share/dovecot, which their postinst copies to
/etc/dovecot; Postfix's main.cf.debian and master.cf.dist.  Into a copy go
examples/dovecot/conf.d/*.conf, examples/pam.d/* and the lines of
examples/postfix/, as docs/INSTALL.md says.  Then, as a sysadmin would:

- doveconf -f protocol=P mail_plugins for every protocol Dovecot serves
  (from doveconf protocols, so a newly installed one is checked too) and
  for lda and doveadm: notify, mailfort_audit, mailfort_crypt (and
  imap_mailfort_audit for imap); no doveconf warning at all;
- the same after the edits the stock comments invite (uncommenting
  "mail_plugins = $mail_plugins" in each protocol block, Pigeonhole's
  "sieve" in lmtp, quota in imap);
- every top-level setting of every snippet is what doveconf reports in the
  end (no stock file overrides a snippet, whatever snippets are present);
- the first passdb is PAM with the protocol as service and ends every login
  (no later passdb, such as the stock auth-system.conf.ext, can let a
  password in), and the PAM file of every authenticating service (imap,
  pop3, submission, sieve, smtp for Postfix SASL, doveadm) runs
  pam_mailfort's code check before the password module; /etc/pam.d/other
  denies;
- postconf: SMTP AUTH only through Dovecot, only on submission (587,
  STARTTLS required) and submissions (465, implicit TLS), never without
  TLS, and on the socket Dovecot listens on.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import SRC, TMP, tap  # noqa: E402

STOCK_DOVECOT = "/usr/share/dovecot"
STOCK_POSTFIX = "/usr/share/postfix"
EXAMPLES = os.path.join(SRC, "examples")
MAILFORT_PLUGINS = ["notify", "mailfort_audit", "mailfort_crypt"]
# services that authenticate, and the PAM service each uses (passdb args = %s)
AUTH_SERVICES = ["imap", "pop3", "submission", "sieve", "smtp", "doveadm"]


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def install_dovecot(name, edit=None):
    """A copy of the stock tree with the examples dropped in."""
    d = os.path.join(TMP, name, "dovecot")
    shutil.rmtree(os.path.dirname(d), ignore_errors=True)
    os.makedirs(d)
    shutil.copy(os.path.join(STOCK_DOVECOT, "dovecot.conf"), d)
    shutil.copytree(os.path.join(STOCK_DOVECOT, "conf.d"), os.path.join(d, "conf.d"))
    if edit is not None:
        edit(os.path.join(d, "conf.d"))
    for f in sorted(glob.glob(os.path.join(EXAMPLES, "dovecot", "conf.d", "*.conf"))):
        shutil.copy(f, os.path.join(d, "conf.d"))
    return os.path.join(d, "dovecot.conf")


def doveconf(conf, *args):
    return run(["doveconf", "-c", conf] + list(args))


def plugins_of(conf, protocol):
    rc, out, err = doveconf(conf, "-f", "protocol=" + protocol, "-h", "mail_plugins")
    return rc, out.split(), err


def check_plugins(conf, what):
    rc, out, err = doveconf(conf, "-h", "protocols")
    protocols = out.split()
    tap.ok(rc == 0 and {"imap", "pop3", "lmtp", "submission", "sieve"} <= set(protocols),
           "%s: Dovecot serves imap, pop3, lmtp, submission and sieve (%s)" % (what, out.strip()),
           err)
    for p in protocols + ["lda", "doveadm"]:
        rc, plugins, err = plugins_of(conf, p)
        want = MAILFORT_PLUGINS + (["imap_mailfort_audit"] if p == "imap" else [])
        missing = [x for x in want if x not in plugins]
        ordered = ("notify" in plugins and "mailfort_audit" in plugins
                   and plugins.index("notify") < plugins.index("mailfort_audit"))
        tap.ok(rc == 0 and not missing and ordered and err.strip() == "",
               "%s: protocol %s loads %s, no warning" % (what, p, " ".join(plugins)),
               "missing: %s\n%s" % (missing, err))
    return protocols


def uncomment_plugins(confd):
    """The edits the stock files' comments invite."""
    for f in glob.glob(os.path.join(confd, "*.conf")):
        with open(f) as fh:
            text = fh.read()
        new = re.sub(r"(?m)^(\s*)#mail_plugins = \$mail_plugins$", r"\1mail_plugins = $mail_plugins",
                     text)
        if f.endswith("20-lmtp.conf"):
            new = new.replace("mail_plugins = $mail_plugins\n", "mail_plugins = $mail_plugins sieve\n")
        if f.endswith("20-imap.conf"):
            new = new.replace("mail_plugins = $mail_plugins\n",
                              "mail_plugins = $mail_plugins imap_quota\n")
        if f.endswith("10-mail.conf"):
            new = re.sub(r"(?m)^#mail_plugins =.*$", "mail_plugins = quota", new)
        with open(f, "w") as fh:
            fh.write(new)


def top_level_settings(path):
    """key = value lines outside any { } block of a snippet."""
    depth, out = 0, []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.endswith("{"):
                depth += 1
                continue
            if line == "}":
                depth -= 1
                continue
            m = re.match(r"^([a-z0-9_]+)\s*=\s*(.*)$", line)
            if depth == 0 and m:
                out.append((m.group(1), m.group(2)))
    return out


# ------------------------------------------------------------ Dovecot, stock
conf = install_dovecot("stock")
rc, out, err = doveconf(conf, "-n")
tap.ok(rc == 0 and err.strip() == "", "doveconf -n reads stock + examples without a warning",
       err)
check_plugins(conf, "stock")

snippets = sorted(glob.glob(os.path.join(EXAMPLES, "dovecot", "conf.d", "*.conf")))
for snippet in snippets:
    for key, value in top_level_settings(snippet):
        if value.startswith("<"):
            continue
        rc, got, err = doveconf(conf, "-h", key)
        got = got.strip()
        if value.startswith("$" + key):
            good = all(w in got.split() for w in value.split()[1:])
        else:
            good = got == value
        tap.ok(rc == 0 and good, "%s: %s = %s holds after the stock files (doveconf: %s)"
               % (os.path.basename(snippet), key, value, got), err)

# ---------------------------------------------------------------- auth path
rc, out, err = doveconf(conf, "-n")
passdbs = re.findall(r"(?ms)^passdb \{\n(.*?)^\}", out)
first = dict(re.findall(r"(?m)^\s*(\S+) = (.*)$", passdbs[0])) if passdbs else {}
tap.ok(first.get("driver") == "pam" and first.get("args", "").split()[-1:] == ["%s"],
       "the first passdb is PAM with the protocol as service", passdbs)
tap.ok(first.get("result_failure") == "return-fail"
       and first.get("result_internalfail") == "return-fail",
       "a refusal there ends the login: the stock PAM passdb behind it (%d passdbs) is never "
       "asked" % len(passdbs), first)
rc, mechs, err = doveconf(conf, "-h", "auth_mechanisms")
tap.ok(set(mechs.split()) <= {"plain", "login"},
       "only mechanisms that carry the password+code string (%s)" % mechs.strip())
rc, cache, err = doveconf(conf, "-h", "auth_cache_size")
tap.ok(cache.strip() in ("0", "0 B", "0B"), "the authentication cache is off (%s)" % cache.strip())

pamd = os.path.join(TMP, "pam.d")
shutil.rmtree(pamd, ignore_errors=True)
shutil.copytree("/etc/pam.d", pamd, symlinks=True)
for f in glob.glob(os.path.join(EXAMPLES, "pam.d", "*")):
    shutil.copy(f, pamd)


def pam_stack(service, seen=()):
    """The auth lines of a service, @include and include/substack resolved."""
    path = os.path.join(pamd, service)
    if not os.path.exists(path) or service in seen:
        return None
    lines = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            if words[0] == "@include":
                lines += pam_stack(words[1], seen + (service,)) or [("missing", words[1])]
            elif words[0] in ("auth", "-auth"):
                if words[1] in ("include", "substack"):
                    lines += pam_stack(words[2], seen + (service,)) or [("missing", words[2])]
                else:
                    m = re.match(r"^-?auth\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)$", line)
                    lines.append((m.group(1), os.path.basename(m.group(2)), m.group(3)))
    return lines


for service in AUTH_SERVICES:
    stack = pam_stack(service)
    mods = [m[1] for m in stack or []]
    code_check = [i for i, m in enumerate(stack or [])
                  if m[1] == "pam_mailfort.so" and m[0] == "requisite"
                  and not set(m[2].split()) & {"apppass", "authfail", "authsucc", "preauth"}]
    password = [i for i, m in enumerate(stack or []) if m[1] in ("pam_unix.so", "pam_sss.so",
                                                                  "pam_ldap.so", "pam_krb5.so")]
    # nothing ends the stack with success before the code check, except the
    # app password line (an app password replaces password and code)
    early = [m for m in (stack or [])[:code_check[0] if code_check else 0]
             if (m[0] in ("sufficient", "required") or "success=done" in m[0]
                 or "success=ok" in m[0]) and not (m[1] == "pam_mailfort.so" and "apppass" in m[2])]
    tap.ok(stack is not None and code_check and password and code_check[0] < password[0]
           and not early and ("missing",) not in [m[:1] for m in stack],
           "PAM service %s: pam_mailfort checks the code before the password module (%s)"
           % (service, " ".join(mods)), stack)
other = pam_stack("other") or []
tap.ok(other and other[-1][1] == "pam_deny.so" and all(m[1] in ("pam_deny.so", "pam_warn.so")
                                                      for m in other),
       "/etc/pam.d/other denies every unknown service", other)

# ---------------------------------------- Dovecot, after the invited edits
conf = install_dovecot("edited", edit=uncomment_plugins)
protocols = check_plugins(conf, "edited stock files")
rc, plugins, err = plugins_of(conf, "lmtp")
tap.ok("sieve" in plugins, "edited: lmtp keeps Pigeonhole's sieve too (%s)" % " ".join(plugins))
rc, plugins, err = plugins_of(conf, "imap")
tap.ok("quota" in plugins and "imap_quota" in plugins,
       "edited: the site's own plugins are kept (%s)" % " ".join(plugins))

# ------------------------------------------------------------------ Postfix
pf = os.path.join(TMP, "postfix")
shutil.rmtree(pf, ignore_errors=True)
os.makedirs(pf)
shutil.copy(os.path.join(STOCK_POSTFIX, "main.cf.debian"), os.path.join(pf, "main.cf"))
shutil.copy(os.path.join(STOCK_POSTFIX, "master.cf.dist"), os.path.join(pf, "master.cf"))
for name in ("main.cf", "master.cf"):
    with open(os.path.join(EXAMPLES, "postfix", name)) as src, \
            open(os.path.join(pf, name), "a") as dst:
        dst.write("\n" + src.read())
rc, out, err = run(["postconf", "-c", pf, "-n"])
tap.ok(rc == 0 and "warning" not in err, "postconf reads stock + examples without a warning", err)


def postconf(*args):
    return run(["postconf", "-c", pf, "-h"] + list(args))[1].strip()


for key, value in top_level_settings(os.path.join(EXAMPLES, "postfix", "main.cf")):
    got = postconf(key)
    tap.ok(got == value, "main.cf: %s = %s holds (postconf: %s)" % (key, value, got))
tap.eq(postconf("smtpd_sasl_type"), "dovecot", "SMTP AUTH is answered by Dovecot")
rc, services, err = run(["postconf", "-c", pf, "-M"])


def service_param(svc, name):
    """A master.cf service's value of NAME: its -o override, else main.cf's."""
    rc, value, err = run(["postconf", "-c", pf, "-Ph", "%s/%s" % (svc, name)])
    return value.strip() or postconf(name)


auth_services = []
for line in services.splitlines():
    svc = "/".join(line.split()[:2])
    if line.split()[7:8] != ["smtpd"]:
        continue
    if service_param(svc, "smtpd_sasl_auth_enable") == "yes":
        auth_services.append(svc)
        tap.eq(service_param(svc, "smtpd_sasl_type"), "dovecot",
               "%s: its SMTP AUTH goes to Dovecot (and so pam_mailfort)" % svc)
        level = service_param(svc, "smtpd_tls_security_level")
        wrapper = service_param(svc, "smtpd_tls_wrappermode")
        auth_only = service_param(svc, "smtpd_tls_auth_only")
        tap.ok((level == "encrypt" or wrapper == "yes") and auth_only == "yes",
               "%s: AUTH only over TLS (smtpd_tls_security_level=%s, smtpd_tls_wrappermode=%s, "
               "smtpd_tls_auth_only=%s)" % (svc, level, wrapper, auth_only))
# submission (587, STARTTLS required) and submissions (465, implicit TLS);
# never port 25, where other servers deliver
tap.eq(sorted(auth_services), ["submission/inet", "submissions/inet"],
       "only submission and submissions offer SMTP AUTH (not smtp, port 25)")
rc, out, err = doveconf(install_dovecot("stock"), "-n")
path = os.path.join(postconf("queue_directory"), postconf("smtpd_sasl_path"))
tap.ok(re.search(r"(?m)^\s*unix_listener %s \{" % re.escape(path), out) is not None,
       "Dovecot listens on Postfix's smtpd_sasl_path (%s)" % path)

tap.done()
