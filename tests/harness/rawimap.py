"""A byte-exact IMAP client for tests that compare servers' answers.

    c = RawImap(port)                    # reads the greeting
    c.login(user, password)
    resp = c.cmd(b"UID FETCH 1 (BODY.PEEK[])")   # every byte the server sent
    c.append(b"INBOX", data, date=b'"14-Nov-2023 10:00:00 +0000"')

cmd() returns everything the server answered to one command, untagged
responses, literals and the tagged completion, as bytes; the tags count
up the same way on every connection, so two servers' answers to the same
sequence of commands can be compared directly.  normalize() blanks what
legitimately differs between two servers (UIDVALIDITY, timings).
A connection the server dropped raises ConnectionError.  append() sends
the message as a literal8 (RFC 3516) when it holds a NUL byte.
"""
import re
import socket


class RawImap:
    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tagn = 0
        self.greeting = self._line()

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def _bytes(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _response(self, tag):
        """Everything up to and including the tagged line."""
        out = []
        while True:
            line = self._line()
            out.append(line)
            # a line ending in {n} or ~{n} announces a literal of n bytes
            while True:
                m = re.search(rb"~?\{(\d+)\}\r\n$", line)
                if not m:
                    break
                out.append(self._bytes(int(m.group(1))))
                line = self._line()
                out.append(line)
            if line.startswith(tag + b" "):
                return b"".join(out)

    def cmd(self, command):
        self.tagn += 1
        tag = b"t%d" % self.tagn
        self.sock.sendall(tag + b" " + command + b"\r\n")
        return self._response(tag)

    def cmd_literal(self, prefix, data, suffix=b"", binary=False):
        """A command with one literal: prefix {n} data suffix."""
        self.tagn += 1
        tag = b"t%d" % self.tagn
        lit = b"%s{%d}" % (b"~" if binary else b"", len(data))
        self.sock.sendall(tag + b" " + prefix + b" " + lit + b"\r\n")
        line = self._line()
        if not line.startswith(b"+"):
            return line + self._response(tag) if not line.startswith(tag) else line
        self.sock.sendall(data + suffix + b"\r\n")
        return self._response(tag)

    def login(self, user, password):
        r = self.cmd(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        if b" OK " not in r.splitlines()[-1]:
            raise RuntimeError("login failed: %r" % r)
        return r

    def append(self, box, data, flags=b"", date=None):
        prefix = b"APPEND " + box
        if flags:
            prefix += b" (" + flags + b")"
        if date:
            prefix += b" " + date
        return self.cmd_literal(prefix, data, binary=b"\0" in data)

    def close(self):
        try:
            self.cmd(b"LOGOUT")
        except (OSError, ConnectionError):
            pass
        self.sock.close()


_TIMING = re.compile(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.")
_VALIDITY = re.compile(rb"\[(UIDVALIDITY|APPENDUID|COPYUID) \d+")


def normalize(resp):
    """resp without what differs between two servers for the same mail."""
    resp = _TIMING.sub(b".", resp)
    return _VALIDITY.sub(lambda m: b"[" + m.group(1) + b" V", resp)


def first_difference(a, b, context=60):
    """A short description of where a and b differ."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return "lengths %d / %d, first difference at byte %d: %r / %r" % (
        len(a), len(b), n, a[max(0, n - 20):n + context], b[max(0, n - 20):n + context])
