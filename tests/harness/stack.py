"""Real Dovecot and Postfix instances for mailfort's tests, in a scratch directory.

    from mailfort import Site, tap
    from stack import Dovecot, Postfix, mail_user

    site = Site("crypt")
    dc = Dovecot("crypt", site=site, plugins=["mailfort_crypt"],
                 users={"alice": "secret"})
    dc.start()
    imap = dc.imap_login("alice", "secret")

Everything listens on 127.0.0.1 on free ports; nothing under /etc is changed
except Postfix's alternate_config_directories, which lists our directory for
as long as the instance runs (Postfix refuses other config dirs otherwise)
and is restored on stop.  Both daemons are stopped when the test exits.

Mail is owned by a dedicated system user (MAIL_USER, created if missing), so
plugins run unprivileged as they would in production.
"""

import glob
import imaplib
import os
import poplib
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import time

import mailfort
from mailfort import BUILD, TMP, free_port, procs, run, wait_port

MAIL_USER = "mfvmail"
PAM_WRAPPER_LIB = "libpam_wrapper.so"
PAM_WRAPPER_MODULES = "/usr/lib/x86_64-linux-gnu/pam_wrapper"
DOVECOT_MODULES = "/usr/lib/dovecot/modules"

# Our plugins, by the name used in mail_plugins, and where the build puts them.
PLUGIN_FILES = {
    "mailfort_crypt": "dovecot-plugins/crypt/.libs/lib10_mailfort_crypt_plugin.so",
    "mailfort_audit": "dovecot-plugins/audit/.libs/lib20_mailfort_audit_plugin.so",
    "imap_mailfort_audit": "dovecot-plugins/audit/.libs/lib21_imap_mailfort_audit_plugin.so",
}


def mail_user():
    """uid, gid of the unprivileged mail owner (created on first use)."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", MAIL_USER], check=True)
        pw = pwd.getpwnam(MAIL_USER)
    return pw.pw_uid, pw.pw_gid


def pam_module_path():
    return os.path.join(BUILD, "pam-module", ".libs", "pam_mailfort.so")


def write_pam_service(directory, service, lines):
    """Write a PAM service file for pam_wrapper (module paths must be absolute).

    lines: list of "auth required /abs/path.so args" strings.  Also writes an
    'other' service that denies, so libpam has a default."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, service), "w") as f:
        f.write("\n".join(lines) + "\n")
    other = os.path.join(directory, "other")
    if not os.path.exists(other):
        with open(other, "w") as f:
            f.write("auth required pam_deny.so\naccount required pam_deny.so\n"
                    "password required pam_deny.so\nsession required pam_deny.so\n")
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o644)
    os.chmod(directory, 0o755)
    return directory


def pam_matrix_passdb(path, users, service):
    """A pam_matrix password file: one 'user:password:service' line each."""
    with open(path, "w") as f:
        for u, p in users.items():
            f.write("%s:%s:%s\n" % (u, p, service))
    os.chmod(path, 0o644)
    return path


class Dovecot:
    """One Dovecot instance (imap, pop3, lmtp, auth on TCP).

    plugins:       mail_plugins for every protocol (e.g. ["mailfort_crypt"])
    imap_plugins:  added in protocol imap only
    lmtp_plugins:  added in protocol lmtp only (e.g. ["sieve"], Pigeonhole)
    users:         {user: password} for a passwd-file passdb (ignored when pam_service)
    pam_service:   authenticate through PAM with this service name, read by
                   pam_wrapper from pam_dir (see write_pam_service)
    plugin_settings: {key: value} for the plugin { } block
    passdb_extra:  more lines for the passdb { } block (e.g. "override_fields = ...")
    extra:         more configuration text appended verbatim
    tls:           a tlslib.TestCA: TLS required by the shipped
                   examples/dovecot/conf.d/11-mailfort-ssl.conf (included);
                   imap() then speaks STARTTLS, verifying against the CA
    examples:      run on examples/dovecot/conf.d itself: the snippets are
                   copied as they are (only their paths are pointed into this
                   instance) and included, instead of the passdb, mail_plugins,
                   auth settings and protocol blocks written here; submission
                   and ManageSieve listen too (submission_port, sieve_port);
                   with tls the examples' TLS settings hold as shipped (only
                   the certificate is this instance's), without it TLS is
                   turned off after them
    """

    def __init__(self, name, site=None, plugins=(), imap_plugins=(), lmtp_plugins=(), users=None,
                 pam_service=None, pam_dir=None, plugin_settings=None, extra="",
                 mail_location="maildir:~/Maildir", userdb_extra="", passdb_extra="",
                 tls=None, examples=False):
        self.name = name
        self.tls = tls
        self.examples = examples
        self.site = site
        self.dir = os.path.join(TMP, "dovecot-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.home_root = os.path.join(self.dir, "home")
        os.makedirs(self.home_root)
        self.uid, self.gid = mail_user()
        os.chown(self.home_root, self.uid, self.gid)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.lmtp_port = free_port()
        self.auth_port = free_port()
        self.submission_port = free_port()
        self.sieve_port = free_port()
        if examples:
            plugins = ["mailfort_audit", "mailfort_crypt", "imap_mailfort_audit"]
        self.plugins = list(plugins)
        self.imap_plugins = list(imap_plugins)
        self.lmtp_plugins = list(lmtp_plugins)
        self.users = dict(users or {})
        self.pam_service = pam_service
        self.pam_dir = pam_dir
        self.plugin_settings = dict(plugin_settings or {})
        if site is not None:
            self.plugin_settings.setdefault("mailfort_config", site.conf)
        self.extra = extra
        self.mail_location = mail_location
        self.userdb_extra = userdb_extra
        self.passdb_extra = passdb_extra
        self.relay_port = None
        self.proc = None

    def home(self, user):
        return os.path.join(self.home_root, user)

    def own_keys(self, site):
        """Hand site's key directory to the mail user: mailfort_crypt runs in
        the mail processes and reads master.key as that user."""
        for f in os.listdir(site.keys):
            os.chown(os.path.join(site.keys, f), self.uid, self.gid)
        os.chown(site.keys, self.uid, self.gid)

    def _module_dir(self):
        d = os.path.join(self.dir, "modules")
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(DOVECOT_MODULES):
            dst = os.path.join(d, f)
            if not os.path.lexists(dst):
                os.symlink(os.path.join(DOVECOT_MODULES, f), dst)
        for plugin in self.plugins + self.imap_plugins + self.lmtp_plugins:
            rel = PLUGIN_FILES.get(plugin)
            if rel is None:
                continue
            src = os.path.join(BUILD, rel)
            dst = os.path.join(d, os.path.basename(rel))
            if os.path.lexists(dst):
                os.unlink(dst)
            os.symlink(src, dst)
        return d

    def _examples_text(self):
        """examples/dovecot/conf.d/*.conf copied into this instance, with the
        paths of a real system pointed at this instance's files."""
        confd = os.path.join(self.dir, "conf.d")
        shutil.rmtree(confd, ignore_errors=True)
        os.makedirs(confd)
        paths = {"/etc/mailfort/mailfort.conf": self.site.conf if self.site else "",
                 "/var/spool/postfix/private/auth": os.path.join(self.dir, "postfix-auth")}
        for f in sorted(glob.glob(os.path.join(mailfort.SRC, "examples/dovecot/conf.d/*.conf"))):
            with open(f) as fh:
                text = fh.read()
            for real, here in paths.items():
                text = text.replace(real, here)
            with open(os.path.join(confd, os.path.basename(f)), "w") as fh:
                fh.write(text)
        return """# the examples, as a sysadmin installs them
mail_plugin_dir = {modules}
!include {confd}/*.conf
{ssl}auth_failure_delay = 0
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission}
  }}
}}
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {sieve}
  }}
}}
submission_relay_host = 127.0.0.1
submission_relay_port = {relay}
""".format(modules=self._module_dir(), confd=confd, submission=self.submission_port,
           ssl=("" if self.tls is not None else
                "# test-only: no certificate here, plaintext logins on loopback\n"
                "ssl = no\ndisable_plaintext_auth = no\n"),
           sieve=self.sieve_port, relay=self.relay_port or 25)

    def config_text(self):
        if self.examples:
            return self._examples_config_text()
        return self._config_text()

    def _examples_config_text(self):
        """The harness's base (paths, listeners, userdb, PAM through
        pam_wrapper), then the examples' snippets."""
        base = self._config_text()
        keep = []
        skip = 0
        for line in base.splitlines():
            if skip:
                skip += line.count("{") - line.count("}")
                continue
            if line.startswith(("passdb {", "protocol imap {", "protocol lmtp {")):
                skip = 1
                continue
            if line.startswith(("mail_plugins", "auth_mechanisms", "auth_cache_size",
                                "mail_plugin_dir", "protocols")):
                continue
            keep.append(line)
        return ("\n".join(keep) + "\nprotocols = imap pop3 lmtp submission sieve\n"
                + self._examples_text())

    def _config_text(self):
        run_dir = os.path.join(self.dir, "run")
        state_dir = os.path.join(self.dir, "state")
        for d in (run_dir, state_dir):
            os.makedirs(d, exist_ok=True)
        users_file = os.path.join(self.dir, "users")
        with open(users_file, "w") as f:
            for u, p in self.users.items():
                f.write("%s:{PLAIN}%s\n" % (u, p))
        os.chmod(users_file, 0o644)
        pextra = "".join("  %s\n" % ln for ln in self.passdb_extra.splitlines() if ln.strip())
        if self.pam_service:
            passdb = "passdb {\n  driver = pam\n  args = %s\n%s}\n" % (self.pam_service, pextra)
            env = ("import_environment = $import_environment LD_PRELOAD=%s PAM_WRAPPER=1 "
                   "PAM_WRAPPER_SERVICE_DIR=%s\n" % (PAM_WRAPPER_LIB, self.pam_dir))
        else:
            passdb = ("passdb {\n  driver = passwd-file\n"
                      "  args = scheme=PLAIN username_format=%%u %s\n%s}\n" % (users_file, pextra))
            env = ""
        plugin_lines = "".join("  %s = %s\n" % kv for kv in self.plugin_settings.items())
        if self.tls is not None:
            # the shipped snippet itself (with examples, among the others
            # included below), then this instance's certificate
            snippet = mailfort.src_path("examples", "dovecot", "conf.d", "11-mailfort-ssl.conf")
            ssl = ("" if self.examples else "!include %s\n" % snippet) + (
                "ssl_cert = <%s\nssl_key = <%s\n" % (self.tls.server_cert, self.tls.server_key))
        else:
            ssl = "ssl = no\ndisable_plaintext_auth = no\n"
        return """# generated by tests/harness/stack.py
base_dir = {run}
state_dir = {state}
instance_name = mf-{name}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
listen = 127.0.0.1
protocols = imap pop3 lmtp
{ssl}auth_mechanisms = plain login
auth_cache_size = 0
{env}default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
mail_location = {mail_location}
mail_plugin_dir = {modules}
mail_plugins = $mail_plugins {plugins}
lmtp_save_to_detail_mailbox = no
recipient_delimiter =
{passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={homes}/%n allow_all_users=yes {userdb_extra}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth}
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins {imap_plugins}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins {lmtp_plugins}
}}
plugin {{
{plugin_lines}}}
{extra}
""".format(run=run_dir, state=state_dir, ssl=ssl, name=self.name, log=self.log, env=env,
           mail_location=self.mail_location, modules=self._module_dir(),
           plugins=" ".join(self.plugins), passdb=passdb, uid=self.uid, gid=self.gid,
           homes=self.home_root, userdb_extra=self.userdb_extra, imap=self.imap_port,
           pop3=self.pop3_port, lmtp=self.lmtp_port, auth=self.auth_port,
           imap_plugins=" ".join(self.imap_plugins),
           lmtp_plugins=" ".join(self.lmtp_plugins), plugin_lines=plugin_lines,
           extra=self.extra)

    def start(self, timeout=30):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        os.chmod(self.conf, 0o644)
        self.proc = procs.start(["dovecot", "-F", "-c", self.conf], "dovecot-" + self.name)
        for port in (self.imap_port, self.lmtp_port, self.auth_port):
            if not wait_port(port, timeout):
                raise RuntimeError("dovecot did not listen on %d; log:\n%s" % (port, self.log_text()))
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            run(["doveadm", "-c", self.conf, "stop"])
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log_line(self, pattern, timeout=10):
        """The first log line matching the regular expression pattern,
        waiting up to timeout seconds (the log process writes what the mail
        processes hand it a moment later); None when none appears."""
        regex = re.compile(pattern)
        end = time.time() + timeout
        while True:
            for line in self.log_text().splitlines():
                if regex.search(line):
                    return line
            if time.time() >= end:
                return None
            time.sleep(0.1)

    def doveadm(self, *args, input=None):
        return run(["doveadm", "-c", self.conf] + list(args), input=input)

    def imap(self, starttls=None, source=None):
        """An IMAP client; with tls, after STARTTLS (verified against the CA)
        unless starttls=False.  source: the local address to connect from
        (e.g. "127.0.0.2": Dovecot treats a client whose address equals the
        server's as secured, so a test of what TLS refuses must come from
        another address)."""
        m = _IMAP4("127.0.0.1", self.imap_port, source)
        if starttls or (starttls is None and self.tls is not None):
            m.starttls(ssl_context=self.tls.client_context())
        return m

    def imap_login(self, user, password):
        m = self.imap()
        m.login(user, password)
        return m

    def pop3_login(self, user, password):
        """A POP3 login and STAT (after STLS with tls); returns (ok, the
        server's refusal)."""
        try:
            p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        except OSError as e:
            return False, str(e)
        try:
            if self.tls is not None:
                p.stls(context=self.tls.client_context())
            p.user(user)
            p.pass_(password)
            p.stat()
            p.quit()
            return True, ""
        except poplib.error_proto as e:
            p.close()
            return False, str(e)

    def lmtp_deliver(self, sender, rcpts, message):
        """Deliver message (bytes or str) over LMTP; returns {rcpt: (code, msg)} for refusals."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=60) as lmtp:
            return lmtp.sendmail(sender, rcpts, message)

    def mail_files(self, user):
        """Every file under the user's home (messages, indexes, caches)."""
        out = []
        for root, _dirs, files in os.walk(self.home(user)):
            out += [os.path.join(root, f) for f in files]
        return out


class _IMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 that can connect from a given local address."""

    def __init__(self, host, port, source=None):
        self._source = source
        super().__init__(host, port, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source else None)


class Postfix:
    """One Postfix instance with its own config and queue directory.

    smtpd on smtp_port (unauthenticated, for mail from outside), submission on
    submission_port (SASL through Dovecot's auth listener when dovecot is given),
    delivery of the virtual domain to Dovecot over LMTP, or to relay_port
    (e.g. an smtp-sink) when given.  milter: "inet:127.0.0.1:PORT" for smtpd_milters.
    chroot: smtpd and cleanup run chrooted in the queue directory, as in Debian's
    stock master.cf.
    tls: a tlslib.TestCA: STARTTLS offered on port 25, required on submission,
    AUTH only under TLS, as examples/postfix ships it; smtp(submission=True)
    then starts TLS (verified against the CA) before anything else.
    """

    def __init__(self, name, domain="example.test", dovecot=None, milter=None,
                 relay_port=None, milter_default_action="tempfail", extra_main=None,
                 chroot=False, tls=None):
        self.name = name
        self.tls = tls
        self.domain = domain
        self.dir = os.path.join(TMP, "postfix-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.dovecot = dovecot
        self.milter = milter
        self.relay_port = relay_port
        self.milter_default_action = milter_default_action
        self.extra_main = dict(extra_main or {})
        self.chroot = "y" if chroot else "n"
        self.maillog = os.path.join(self.dir, "maillog")
        self.started = False

    def queue_dir(self):
        return os.path.join(self.dir, "queue")

    def main_cf(self):
        q = os.path.join(self.dir, "queue")
        data = os.path.join(self.dir, "data")
        os.makedirs(q, exist_ok=True)
        os.makedirs(data, exist_ok=True)
        shutil.chown(data, "postfix", "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": q,
            "data_directory": data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": "/tmp, /var, %s" % self.dir,
            "myhostname": "mx.%s" % self.domain,
            "mydomain": self.domain,
            "myorigin": self.domain,
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "smtputf8_enable": "no",
            "biff": "no",
            "message_size_limit": "52428800",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination",
            "virtual_mailbox_domains": self.domain,
            "milter_default_action": self.milter_default_action,
            "milter_protocol": "6",
            "smtpd_milters": self.milter or "",
            "non_smtpd_milters": self.milter or "",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "5s",
            "lmtp_destination_concurrency_limit": "10",
            "default_destination_concurrency_limit": "20",
        }
        if self.relay_port:
            main["virtual_transport"] = "smtp:[127.0.0.1]:%d" % self.relay_port
        elif self.dovecot is not None:
            main["virtual_transport"] = "lmtp:inet:127.0.0.1:%d" % self.dovecot.lmtp_port
        else:
            main["virtual_transport"] = "discard:"
        if self.tls is not None:
            main.update({"smtpd_tls_cert_file": self.tls.server_cert,
                         "smtpd_tls_key_file": self.tls.server_key,
                         "smtpd_tls_security_level": "may",
                         "smtpd_tls_auth_only": "yes",
                         "smtpd_tls_protocols": ">=TLSv1.2",
                         "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
                         "smtpd_tls_received_header": "yes",
                         "smtpd_tls_loglevel": "1",
                         "smtp_tls_security_level": "may"})
        if self.dovecot is not None:
            main.update({"smtpd_sasl_type": "dovecot",
                         "smtpd_sasl_path": "inet:127.0.0.1:%d" % self.dovecot.auth_port})
        main.update(self.extra_main)
        return "".join("%s = %s\n" % kv for kv in main.items())

    def master_cf(self):
        sub = ""
        if self.dovecot is not None:
            sub = ("127.0.0.1:%d inet n - n - - smtpd\n"
                   "  -o syslog_name=postfix/submission\n"
                   "  -o smtpd_sasl_auth_enable=yes\n"
                   "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
                   "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
                   "  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject\n"
                   % self.submission_port)
            if self.tls is not None:
                sub += "  -o smtpd_tls_security_level=encrypt\n"
        services = [
            "127.0.0.1:%d inet n - %s - - smtpd" % (self.smtp_port, self.chroot),
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - %s - 0 cleanup" % self.chroot,
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "proxywrite unix - - n - 1 proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "virtual unix - n n - - virtual",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n" + sub

    def start(self, timeout=30):
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(self.master_cf())
        _alternate_dirs(add=self.dir)
        procs.on_exit(self.stop)
        r = run(["postfix", "-c", self.dir, "start"], timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix did not start: %s%s\n%s" % (r.stdout, r.stderr, self.maillog_text()))
        self.started = True
        if not wait_port(self.smtp_port, timeout):
            raise RuntimeError("postfix smtpd did not listen; maillog:\n" + self.maillog_text())
        return self

    def stop(self):
        if self.started:
            run(["postfix", "-c", self.dir, "stop"], timeout=60)
            self.started = False
            for _ in range(50):
                if not os.path.exists(os.path.join(self.dir, "queue", "pid", "master.pid")):
                    break
                time.sleep(0.1)
        _alternate_dirs(remove=self.dir)

    def maillog_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def postconf(self, *args):
        return run(["postconf", "-c", self.dir] + list(args))

    def queue_ids(self):
        """Queue ids currently in the queue (deferred, active, incoming, hold)."""
        out = []
        for sub in ("incoming", "active", "deferred", "hold"):
            for p in glob.glob(os.path.join(self.dir, "queue", sub, "**", "*"), recursive=True):
                if os.path.isfile(p):
                    out.append((sub, os.path.basename(p)))
        return out

    def wait_delivered(self, count, timeout=60):
        """Wait until the maillog shows count 'status=sent' lines; returns the count seen."""
        end = time.time() + timeout
        n = 0
        while time.time() < end:
            n = self.maillog_text().count("status=sent")
            if n >= count:
                return n
            time.sleep(0.2)
        return n

    def smtp(self, submission=False, starttls=None, source=None):
        """An SMTP client on port 25 or submission; with tls it starts TLS
        on submission (or wherever starttls=True) before anything else."""
        port = self.submission_port if submission else self.smtp_port
        s = smtplib.SMTP("127.0.0.1", port, timeout=60,
                         source_address=(source, 0) if source else None)
        if starttls or (starttls is None and submission and self.tls is not None):
            s.starttls(context=self.tls.client_context())
        return s


def _alternate_dirs(add=None, remove=None):
    """Keep our dir in /etc/postfix/main.cf alternate_config_directories while we run."""
    cur = run(["postconf", "-h", "alternate_config_directories"]).stdout.strip()
    dirs = [d for d in cur.replace(",", " ").split() if d]
    if add and add not in dirs:
        dirs.append(add)
    if remove:
        dirs = [d for d in dirs if d != remove]
    run(["postconf", "-e", "alternate_config_directories = " + " ".join(dirs)])
