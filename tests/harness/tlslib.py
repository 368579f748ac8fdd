"""A throwaway certificate authority for TLS on loopback, made with openssl.

    from tlslib import TestCA
    ca = TestCA(os.path.join(TMP, "ca"))
    ca.cert, ca.server_cert, ca.server_key   # PEM files
    ctx = ca.client_context()                # verifies the server against ca.cert

The CA signs one server certificate for "localhost", "mx.example.test" and
127.0.0.1, so clients can check the name and the chain as a real mail
client does (no verification switched off).  Keys are 0600, owned by root,
as Dovecot and Postfix expect to read them before dropping privileges.
scripts/demo uses the same CA and prints how to trust it.
"""

import os
import ssl
import subprocess

SERVER_NAMES = ("localhost", "mx.example.test")


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))


class TestCA:
    def __init__(self, directory, days=30):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        self.server_cert = os.path.join(directory, "server.pem")
        self.server_key = os.path.join(directory, "server.key")
        if not os.path.exists(self.server_cert):
            self._make(days)

    def _make(self, days):
        d = self.dir
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", self.key, "-out", self.cert, "-days", str(days),
                  "-subj", "/O=mailfort test/CN=mailfort throwaway CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
        csr = os.path.join(d, "server.csr")
        _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", self.server_key, "-out", csr, "-subj",
                  "/O=mailfort test/CN=%s" % SERVER_NAMES[0]], d)
        ext = os.path.join(d, "server.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = %s,IP:127.0.0.1\n"
                    % ",".join("DNS:" + n for n in SERVER_NAMES))
        _openssl(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                  "-CAcreateserial", "-out", self.server_cert, "-days", str(days),
                  "-extfile", ext], d)
        for f in (self.key, self.server_key):
            os.chmod(f, 0o600)
        for f in (self.cert, self.server_cert):
            os.chmod(f, 0o644)

    def client_context(self):
        """An SSL context that trusts only this CA and checks the host name."""
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
