"""Generated test mail for the read-path tests: the kinds of message that
break MIME readers and chunked storage, made deterministically from a seed.

    from mailgen import corpus
    for m in corpus(seed=1):
        m.name, m.data, m.sections, m.leaves

corpus() yields Msg objects: name (what kind of message it is, for error
messages), data (the bytes to APPEND, CRLF line ends unless the case is
about something else), sections (every IMAP section specifier of the
message's MIME tree: "1", "2.1", "3" ... and "n.HEADER"/"n.TEXT" for
encapsulated messages) and leaves (the sections that are single parts,
for BINARY).  The set covers:

  - sizes around the 64 KiB chunk size: the size as stored (CRLF counted
    as one byte, as Dovecot stores mail with mail_save_crlf = no) is
    k * 65536 + d for k = 1..3 and small d, with the boundary falling in
    text, in a base64 attachment, in a MIME boundary line or in a header;
  - 8-bit text (UTF-8 and EUC-KR Korean), Content-Transfer-Encoding:
    binary parts with every byte value, NUL bytes in bodies and headers,
    bare CR and bare LF;
  - deep multiparts (up to 9 levels), message/rfc822 inside multiparts and
    multiparts inside message/rfc822, empty parts, preambles and epilogues;
  - messages without a final newline, header-only messages, a missing
    closing boundary, unknown transfer encodings, broken base64 and QP;
  - list and newsletter mail: List-* headers, long folded and
    RFC 2047-encoded headers, multipart/alternative with quoted-printable
    HTML and inline base64 images, and reply chains (In-Reply-To,
    References) for THREAD.
"""
import base64
import quopri
import random

CHUNK = 65536
DATE0 = 1700000000  # 2023-11-14


class Node:
    """One MIME entity: headers (list of (name, value) or raw bytes lines)
    and either a body (bytes), children (multipart) or an inner message."""

    def __init__(self, headers, body=b"", children=None, inner=None, preamble=b"",
                 epilogue=b"", boundary=None, close=True, newline=b"\r\n"):
        self.headers = headers
        self.body = body
        self.children = children
        self.inner = inner
        self.preamble = preamble
        self.epilogue = epilogue
        self.boundary = boundary
        self.close = close
        self.nl = newline

    def render(self):
        nl = self.nl
        out = b"".join(_header(h, nl) for h in self.headers) + nl
        if self.children is not None:
            b = self.boundary.encode()
            out += self.preamble
            for c in self.children:
                out += b"--" + b + nl + c.render() + nl
            if self.close:
                out += b"--" + b + b"--" + nl + self.epilogue
            return out
        if self.inner is not None:
            return out + self.inner.render()
        return out + self.body


def _header(h, nl):
    if isinstance(h, bytes):
        return h + nl
    name, value = h
    if isinstance(value, str):
        value = value.encode("utf-8")
    return name.encode() + b": " + value + nl


class Msg:
    def __init__(self, name, data, sections, leaves):
        self.name = name
        self.data = data
        self.sections = sections
        self.leaves = leaves


def sections_of(node):
    """IMAP section specifiers of a message (the top node) and its leaves."""
    secs, leaves = [], []

    def body_parts(n, prefix):
        # the parts of an entity's body, numbered under prefix
        if n.children is not None:
            for i, c in enumerate(n.children, 1):
                entity(c, prefix + str(i))
        else:
            # a single part (or an encapsulated message) is part 1
            entity(n, prefix + "1", top_level_single=True)

    def entity(n, spec, top_level_single=False):
        secs.append(spec)
        if n.children is not None:
            secs.append(spec + ".MIME")
            for i, c in enumerate(n.children, 1):
                entity(c, "%s.%d" % (spec, i))
        elif n.inner is not None:
            secs.extend([spec + ".MIME", spec + ".HEADER", spec + ".TEXT"])
            body_parts(n.inner, spec + ".")
        else:
            if not top_level_single:
                secs.append(spec + ".MIME")
            leaves.append(spec)

    body_parts(node, "")
    return secs, leaves


def lf_size(data):
    """Size as Dovecot stores it (mail_save_crlf = no: CRLF -> LF)."""
    return len(data) - data.count(b"\r\n")


class Gen:
    def __init__(self, seed):
        self.rnd = random.Random(seed)
        self.n = 0

    # ---------------------------------------------------------------- pieces
    def words(self, n):
        rnd = self.rnd
        vocab = ["report", "budget", "meeting", "minutes", "agenda", "policy", "draft",
                 "ministry", "review", "annex", "schedule", "contract", "notice", "update",
                 "quarterly", "procurement", "committee", "approval", "the", "of", "and",
                 "for", "with", "mailfort", "archive", "lorem", "ipsum", "dolor"]
        return " ".join(rnd.choice(vocab) for _ in range(n))

    def text(self, lines, width=72):
        out = []
        for _ in range(lines):
            line = self.words(self.rnd.randint(3, 14))
            out.append(line[:width].encode() + b"\r\n")
        return b"".join(out)

    def filler(self, n, width=76):
        """Text whose stored size (CRLF as one byte) is exactly n."""
        rnd = self.rnd
        out = bytearray()
        alphabet = b"abcdefghijklmnopqrstuvwxyz     ,.0123456789"
        while n > 0:
            ln = min(n, width + 1)
            body = bytes(rnd.choice(alphabet) for _ in range(ln - 1))
            out += body + b"\r\n"
            n -= ln
        return bytes(out)

    def korean(self, lines):
        hangul = "가나다라마바사아자차카타파하 정부 보고서 회의 예산 검토 문서 공지 "
        out = []
        for _ in range(lines):
            out.append("".join(self.rnd.choice(hangul) for _ in range(self.rnd.randint(10, 40))))
        return "\r\n".join(out) + "\r\n"

    def b64(self, data, width=76):
        enc = base64.b64encode(data)
        return b"".join(enc[i:i + width] + b"\r\n" for i in range(0, len(enc), width))

    def qp(self, text):
        return quopri.encodestring(text.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")

    def msgid(self):
        self.n += 1
        return "<gen.%d.%08x@example.test>" % (self.n, self.rnd.getrandbits(32))

    def top(self, subject, frm="Sender <sender@example.test>", extra=(), date=None):
        date = date if date is not None else DATE0 + self.rnd.randint(0, 86400 * 90)
        import email.utils
        return [("From", frm), ("To", "Recipient <alice@example.test>"),
                ("Subject", subject), ("Date", email.utils.formatdate(date)),
                ("Message-ID", self.msgid())] + list(extra) + [("MIME-Version", "1.0")]

    def boundary(self):
        return "=_b%08x" % self.rnd.getrandbits(32)

    def leaf(self, ctype, body, cte=None, extra=()):
        h = [("Content-Type", ctype)]
        if cte:
            h.append(("Content-Transfer-Encoding", cte))
        return Node(h + list(extra), body=body)

    def multi(self, sub, children, boundary=None, **kw):
        b = boundary or self.boundary()
        return Node([("Content-Type", 'multipart/%s; boundary="%s"' % (sub, b))],
                    children=children, boundary=b, **kw)

    def rfc822(self, inner):
        return Node([("Content-Type", "message/rfc822")], inner=inner)

    def msgnode(self, headers, body_node):
        """A message as an entity: headers + the body entity's own headers."""
        return Node(headers + body_node.headers, body=body_node.body,
                    children=body_node.children, inner=body_node.inner,
                    preamble=body_node.preamble, epilogue=body_node.epilogue,
                    boundary=body_node.boundary, close=body_node.close, newline=body_node.nl)

    def message(self, name, headers, body_node):
        """A top-level message."""
        node = self.msgnode(headers, body_node)
        secs, leaves = sections_of(node)
        return Msg(name, node.render(), secs, leaves)

    def sized(self, name, make, target):
        """make(filler_bytes) -> Msg; returns the Msg whose stored size is target."""
        need = target - lf_size(make(b"").data)
        for _ in range(8):
            if need < 0:
                break
            m = make(self.filler(need))
            if lf_size(m.data) == target:
                m.name = name
                return m
            need -= lf_size(m.data) - target
        raise AssertionError("cannot make %s with %d bytes" % (name, target))

    # ---------------------------------------------------------------- kinds
    def chunk_boundaries(self):
        out = []
        deltas = [-3, -2, -1, 0, 1, 2, 3]
        for k in (1, 2, 3):
            for d in deltas:
                target = k * CHUNK + d
                head = self.top("size %d*64KiB%+d" % (k, d))
                # plain text
                out.append(self.sized(
                    "text/plain, stored size %d*64KiB%+d" % (k, d),
                    lambda f, head=head: self.message(
                        "text", head, self.leaf("text/plain; charset=us-ascii", f)),
                    target))
            for d in (-2, 0, 1):
                target = k * CHUNK + d
                # multipart: a base64 attachment across the boundary, text
                # after it sized so the total hits the target
                att = self.rnd.randbytes(int(k * CHUNK * 0.6))
                head = self.top("attachment %d*64KiB%+d" % (k, d))
                intro = self.text(3)
                b = self.boundary()

                def mk(f, att=att, head=head, intro=intro, b=b):
                    return self.message(
                        "att", head,
                        self.multi("mixed", [
                            self.leaf("text/plain; charset=us-ascii", intro),
                            self.leaf("application/octet-stream; name=\"a.bin\"", self.b64(att),
                                      "base64",
                                      [("Content-Disposition", 'attachment; filename="a.bin"')]),
                            self.leaf("text/plain; charset=us-ascii", f)], boundary=b))
                out.append(self.sized("multipart with base64 across %d*64KiB%+d" % (k, d),
                                      mk, target))
        # a MIME boundary line and a part header right at a chunk boundary
        for shift in (-40, -20, -2, 0, 2, 30):
            b = self.boundary()
            head = self.top("boundary line at the chunk boundary %+d" % shift)
            t2, t4 = self.text(2), self.text(4)

            def mk(f, b=b, head=head, t2=t2, t4=t4):
                n = Node(head + [("Content-Type", 'multipart/mixed; boundary="%s"' % b)],
                         children=[self.leaf("text/plain; charset=us-ascii", f),
                                   self.leaf("text/html; charset=utf-8",
                                             b"<p>" + t2 + b"</p>\r\n", "quoted-printable"),
                                   self.leaf("text/plain", t4)],
                         boundary=b)
                secs, leaves = sections_of(n)
                return Msg("boundary", n.render(), secs, leaves)
            probe = mk(b"")
            # where the second boundary line starts, in the stored form
            pos = probe.data.index(b"--" + b.encode(), probe.data.index(b.encode() + b'"') + 10)
            pos = probe.data.index(b"--" + b.encode(), pos + 1)
            lf_before = lf_size(probe.data[:pos])
            need = CHUNK + shift - lf_before
            first = mk(self.filler(need))
            first.name = "boundary line %+d bytes from the chunk boundary" % shift
            out.append(first)
        # a header folded across the chunk boundary (very long header block)
        for shift in (-5, 0, 7):
            head = self.top("long header %+d" % shift)
            t5 = self.text(5)

            def mk(f, head=head, t5=t5):
                long_hdr = [("X-Long", b"start " + f.replace(b"\r\n", b"\r\n\t") + b"end")]
                return self.message("hdr", head[:-1] + long_hdr + head[-1:],
                                    self.leaf("text/plain", t5))
            m = self.sized("header folded across the chunk boundary %+d" % shift, mk,
                           CHUNK + shift + 400)
            if m is not None:
                out.append(m)
        return [m for m in out if m is not None]

    def eight_bit_binary(self):
        out = []
        for i in range(10):
            kr = self.korean(self.rnd.randint(3, 400)).encode("utf-8")
            subject = "=?UTF-8?B?%s?=" % base64.b64encode(("예산 보고서 %d" % i).encode()).decode()
            out.append(self.message("8bit UTF-8 Korean text", self.top(subject),
                                    self.leaf("text/plain; charset=utf-8", kr, "8bit")))
        for i in range(6):
            kr = self.korean(self.rnd.randint(3, 200)).encode("euc-kr", "replace")
            out.append(self.message(
                "8bit EUC-KR text in a multipart", self.top("euc-kr %d" % i),
                self.multi("mixed", [
                    self.leaf("text/plain; charset=euc-kr", kr, "8bit"),
                    self.leaf("text/plain; charset=utf-8",
                              self.b64(self.korean(5).encode()), "base64")])))
        for i in range(10):
            size = self.rnd.choice([1, 255, 256, 4096, 70000, 140000])
            blob = bytes(range(256)) * (size // 256) + self.rnd.randbytes(size % 256)
            out.append(self.message(
                "Content-Transfer-Encoding: binary part of %d bytes" % size,
                self.top("binary %d" % i),
                self.multi("mixed", [
                    self.leaf("text/plain", self.text(2)),
                    self.leaf("application/octet-stream", blob, "binary"),
                    self.leaf("text/plain", self.text(1))])))
        for i in range(8):
            body = bytearray(self.text(self.rnd.randint(2, 2000)))
            for _ in range(self.rnd.randint(1, 5)):
                body[self.rnd.randrange(len(body))] = 0
            kind = ["text/plain", "application/octet-stream"][i % 2]
            cte = ["8bit", "binary"][i % 2]
            out.append(self.message("NUL bytes in a %s body (%d bytes)" % (kind, len(body)),
                                    self.top("nul %d" % i),
                                    self.multi("mixed", [
                                        self.leaf("text/plain", self.text(2)),
                                        self.leaf(kind, bytes(body), cte)])
                                    if i % 3 else self.leaf(kind, bytes(body), cte)))
        out.append(self.message("a NUL byte in a header", self.top("nul hdr", extra=[
            ("X-Nul", b"before\x00after")]), self.leaf("text/plain", self.text(3))))
        out.append(self.message("bare CR and bare LF in the body", self.top("bare cr lf"),
                                self.leaf("text/plain", b"one\rtwo\nthree\r\n\r\rfour\n\n")))
        out.append(self.message("8-bit header without encoding", self.top(
            "정부 공지 raw 8bit", frm="홍길동 <hong@example.test>"),
            self.leaf("text/plain; charset=utf-8", self.korean(3).encode(), "8bit")))
        return out

    def deep(self):
        out = []
        budget = [0]

        def tree(depth):
            budget[0] -= 1
            if depth <= 0 or budget[0] <= 0 or self.rnd.random() < 0.25:
                r = self.rnd.random()
                if r < 0.4:
                    return self.leaf("text/plain; charset=us-ascii", self.text(self.rnd.randint(0, 30)))
                if r < 0.6:
                    return self.leaf("text/html; charset=utf-8",
                                     self.qp(b"<html><body>" + self.text(20) +
                                             "한글 본문".encode() + b"</body></html>\r\n"),
                                     "quoted-printable")
                if r < 0.8:
                    return self.leaf("image/png", self.b64(self.rnd.randbytes(
                        self.rnd.randint(0, 5000))), "base64",
                        [("Content-ID", self.msgid())])
                if depth <= 1:
                    inner = Node(self.top("forwarded") + [("Content-Type", "text/plain")],
                                 body=self.text(4))
                else:
                    inner = self.msgnode(self.top("forwarded"), tree(depth - 1))
                return self.rfc822(inner)
            sub = self.rnd.choice(["mixed", "alternative", "related", "parallel", "digest"])
            kids = [tree(depth - 1) for _ in range(self.rnd.randint(1, 4))]
            pre = self.text(1) if self.rnd.random() < 0.3 else b""
            epi = self.text(1) if self.rnd.random() < 0.3 else b""
            return self.multi(sub, kids, preamble=pre, epilogue=epi)

        for i in range(40):
            depth = 3 + i % 7
            budget[0] = 30
            t = tree(depth)
            if t.children is None:
                t = self.multi("mixed", [t, tree(depth - 1)])
            out.append(self.message("nested multipart, depth up to %d (#%d)" % (depth, i),
                                    self.top("deep %d" % i), t))
        # a chain of 9 nested multiparts, each with one text part
        node = self.leaf("text/plain", self.text(2))
        for _ in range(9):
            node = self.multi("mixed", [self.leaf("text/plain", self.text(1)), node])
        out.append(self.message("9 nested multiparts", self.top("chain"), node))
        # message/rfc822 whose body is a multipart with an rfc822 inside
        inner2 = Node(self.top("innermost") + [("Content-Type", "text/plain")], body=self.text(3))
        mid = self.multi("mixed", [self.leaf("text/plain", self.text(2)), Node(
            [("Content-Type", "message/rfc822")], inner=inner2)])
        mid.headers = self.top("middle") + mid.headers
        out.append(self.message("rfc822 in a multipart in an rfc822", self.top("nest rfc822"),
                                self.multi("mixed", [self.leaf("text/plain", self.text(1)),
                                                     Node([("Content-Type", "message/rfc822")],
                                                          inner=mid)])))
        out.append(self.message("multipart with empty parts", self.top("empty parts"),
                                self.multi("mixed", [self.leaf("text/plain", b""),
                                                     self.leaf("text/plain", b""),
                                                     self.multi("alternative", [
                                                         self.leaf("text/plain", b"")])])))
        return out

    def no_final_newline(self):
        out = []
        for i in range(12):
            body = self.text(self.rnd.randint(1, 50 + 1500 * (i % 3)))
            body = body[:-2] if i % 2 == 0 else body[:-1]  # no CRLF / a lone CR at the end
            out.append(self.message("text without a final newline (%d bytes)" % len(body),
                                    self.top("no newline %d" % i),
                                    self.leaf("text/plain", body)))
        for i in range(8):
            m = self.message("multipart whose last line has no newline (#%d)" % i,
                             self.top("mp no newline %d" % i),
                             self.multi("mixed", [self.leaf("text/plain", self.text(3)),
                                                  self.leaf("application/octet-stream",
                                                            self.b64(self.rnd.randbytes(
                                                                900 * (i + 1))), "base64")],
                                        epilogue=b"" if i % 2 else self.text(1)))
            m.data = m.data.rstrip(b"\r\n")
            out.append(m)
        h = self.top("header only")
        for i, data in enumerate([
                b"".join(_header(x, b"\r\n") for x in h),                # no blank line
                b"".join(_header(x, b"\r\n") for x in h).rstrip(b"\r\n"),  # no newline at all
                b"".join(_header(x, b"\r\n") for x in h) + b"\r\n",     # empty body
                b"Subject: only a subject",
                b"\r\n\r\nbody without any header\r\n",
        ]):
            out.append(Msg("header-only or header-less message #%d" % i, data, ["1"], ["1"]))
        # the final boundary missing, and the closing boundary without newline
        m = self.multi("mixed", [self.leaf("text/plain", self.text(2)),
                                 self.leaf("text/plain", self.text(2))], close=False)
        out.append(self.message("multipart without a closing boundary", self.top("no close"), m))
        # an attachment that ends exactly at a chunk boundary without newline
        head = self.top("nonl 64k")
        m = self.sized("no final newline at 64KiB", lambda f: self.message(
            "x", head, self.leaf("text/plain", f[:-2] + b"xy" if f else b"xy")), CHUNK)
        out.append(m)
        return out

    def odd(self):
        out = []
        out.append(self.message("unknown Content-Transfer-Encoding", self.top("x-uuencode"),
                                self.multi("mixed", [self.leaf("text/plain", self.text(2)),
                                                     self.leaf("application/octet-stream",
                                                               self.text(3), "x-uuencode")])))
        out.append(self.message("broken base64", self.top("bad b64"),
                                self.leaf("application/octet-stream",
                                          b"QUJD**not base64**\r\nRE=F\r\n===\r\n", "base64")))
        out.append(self.message("broken quoted-printable", self.top("bad qp"),
                                self.leaf("text/plain", b"a=ZZb=\r\nc=4\r\nend=", "quoted-printable")))
        out.append(self.message("a 100 KiB line", self.top("long line"),
                                self.leaf("text/plain", b"x" * 102400 + b"\r\n")))
        out.append(self.message("LF-only line ends", self.top("lf only"),
                                Node([("Content-Type", "text/plain")], body=self.text(40).replace(
                                    b"\r\n", b"\n"), newline=b"\n")))
        enc = "=?UTF-8?Q?" + "".join("=%02X" % c for c in "공지사항".encode()) + "?="
        out.append(self.message("RFC 2047 headers everywhere", self.top(
            enc + " and " + enc, frm="=?EUC-KR?B?%s?= <kr@example.test>" % base64.b64encode(
                "담당자".encode("euc-kr")).decode(),
            extra=[("Cc", "=?UTF-8?B?%s?= <cc@example.test>" % base64.b64encode(
                "참조".encode()).decode())]),
            self.leaf("text/plain; charset=utf-8", self.korean(2).encode(), "8bit")))
        out.append(self.message("duplicate Content-Transfer-Encoding", self.top("dup cte"),
                                self.leaf("text/plain", self.b64(b"hello world\r\n"), "base64",
                                          [("Content-Transfer-Encoding", "quoted-printable")])))
        out.append(self.message("multipart without boundary parameter", self.top("no boundary"),
                                Node([("Content-Type", "multipart/mixed")], body=self.text(3))))
        out.append(self.message("whitespace before the header colon", self.top("odd hdr", extra=[
            (b"X-Space : value"), (b"X-Tab\t: value")]), self.leaf("text/plain", self.text(2))))
        return out

    def newsletters(self, n):
        out = []
        lists = [("announce", "Ministry announcements"), ("dev", "Developers"),
                 ("press", "Press releases"), ("users", "Users")]
        threads = []
        for i in range(n):
            lname, ldesc = self.rnd.choice(lists)
            lid = "%s.lists.example.test" % lname
            extra = [("List-Id", "%s <%s>" % (ldesc, lid)),
                     ("List-Unsubscribe", "<mailto:%s-leave@example.test>, "
                      "<https://lists.example.test/u/%s?token=%08x>" % (
                          lname, lname, self.rnd.getrandbits(32))),
                     ("List-Post", "<mailto:%s@lists.example.test>" % lname),
                     ("Precedence", "list"),
                     ("Received", "from mx.example.test (mx.example.test [192.0.2.%d])\r\n\tby "
                      "lists.example.test with ESMTPS id %08x\r\n\tfor <alice@example.test>; "
                      "Mon, 13 Nov 2023 10:00:00 +0900" % (i % 250, self.rnd.getrandbits(32))),
                     ("DKIM-Signature", "v=1; a=rsa-sha256; d=example.test; s=s1;\r\n\t"
                      "bh=%s;\r\n\tb=%s" % (base64.b64encode(self.rnd.randbytes(32)).decode(),
                                           base64.b64encode(self.rnd.randbytes(128)).decode()))]
            subject = "[%s] %s" % (lname, self.words(self.rnd.randint(2, 8)))
            if threads and self.rnd.random() < 0.5:
                parent = self.rnd.choice(threads)
                extra += [("In-Reply-To", parent[0]),
                          ("References", " ".join(parent[1] + [parent[0]])[-900:])]
                subject = "Re: " + parent[2]
                refs = parent[1] + [parent[0]]
            else:
                refs = []
            head = self.top(subject, frm="%s <%s@example.test>" % (
                self.words(2).title(), self.words(1)), extra=extra)
            mid = dict(head)["Message-ID"]
            threads.append((mid, refs, subject.replace("Re: ", "")))
            text = self.text(self.rnd.randint(5, 300))
            html = (b"<html><head><style>p{margin:0}</style></head><body>" +
                    b"".join(b"<p>" + ln + b"</p>\r\n" for ln in text.splitlines()) +
                    "<p>수신거부 unsubscribe</p>".encode() + b"</body></html>\r\n")
            kind = i % 4
            if kind == 0:
                body = self.leaf("text/plain; charset=utf-8; format=flowed", text, "7bit")
            elif kind == 1:
                body = self.multi("alternative", [
                    self.leaf("text/plain; charset=utf-8", self.qp(text), "quoted-printable"),
                    self.leaf("text/html; charset=utf-8", self.qp(html), "quoted-printable")])
            elif kind == 2:
                imgs = [self.leaf("image/gif; name=\"i%d.gif\"" % j,
                                  self.b64(self.rnd.randbytes(self.rnd.randint(40, 9000))),
                                  "base64", [("Content-ID", "<img%d@example.test>" % j),
                                             ("Content-Disposition", "inline")])
                        for j in range(self.rnd.randint(1, 4))]
                body = self.multi("alternative", [
                    self.leaf("text/plain; charset=utf-8", text, "8bit"),
                    self.multi("related", [self.leaf("text/html; charset=utf-8",
                                                     self.b64(html), "base64")] + imgs)])
            else:
                body = self.multi("mixed", [
                    self.leaf("text/plain; charset=utf-8", text),
                    self.leaf("text/plain; charset=us-ascii", b"_______________\r\n" +
                              ("%s mailing list\r\n%s@lists.example.test\r\n" % (
                                  lname, lname)).encode(),
                              extra=[("Content-Disposition", "inline")])],
                    preamble=b"This is a multi-part message in MIME format.\r\n")
            out.append(self.message("list mail #%d (%s, kind %d)" % (i, lname, kind), head, body))
        return out


def corpus(seed=1, lists=150):
    g = Gen(seed)
    out = (g.chunk_boundaries() + g.eight_bit_binary() + g.deep() + g.no_final_newline() +
           g.odd() + g.newsletters(lists))
    return out
