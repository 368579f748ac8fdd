"""MIME header mutations for the differential oracle.

    mutate(rng, msg_bytes) -> bytes

rng is a random.Random; msg_bytes a whole message (CRLF line ends) with at
least one MIME part.  Returns the message with one to three mutations of
its MIME headers, each of a kind that some mail reader reads differently
from another (or, as often, a harmless variant that every reader reads the
same way, so that the oracle also sees what must not be refused):

  dup-field     a second Content-Type / -Transfer-Encoding / -Disposition,
                before or after the first, with another value
  case-fold     field names in other case, values folded onto more lines,
                white space before the colon
  rfc2231       name/filename split into RFC 2231 sections, encoded as
                name*=UTF-8''..., mixed with the plain form (same or other
                value), sections repeated or missing
  boundary      closing boundary removed, a part after the closing
                boundary, a line that begins with the boundary and goes on,
                a nested boundary that begins like the outer one, a bare CR
                before a boundary
  encoding      RFC 2047 encoded file names, CTE in other case or with
                comments, two words for a CTE, base64 multipart
  bytes         NUL or bare CR in a part header, 8-bit in a header name, a
                line that is not a field before Content-Type

Nothing here knows the milter: the oracle decides from what independent
readers extract whether a mutation escaped.  The mutator never raises on a
message it cannot change; it returns it unchanged.
"""
import re

CT_OTHER = [b"text/plain", b"application/octet-stream", b"application/pdf", b"image/png",
            b"application/x-msdownload"]
EXE_NAMES = [b"invoice.exe", b"scan.scr", b"update.js", b"report.pdf.exe"]
SAFE_NAMES = [b"invoice.pdf", b"scan.png", b"notes.txt"]


def _parts(msg):
    """(start, end) of every header block: the message's and each part's."""
    blocks = []
    end = msg.find(b"\r\n\r\n")
    blocks.append((0, end + 2 if end >= 0 else len(msg)))
    for m in re.finditer(rb"\r\n--[^\r\n]+\r\n", msg):
        start = m.end()
        e = msg.find(b"\r\n\r\n", start)
        if e < 0:
            continue
        blocks.append((start, e + 2))
    return blocks


def _fields(block):
    """[(name, raw_line_with_continuations)] of a header block."""
    out = []
    for line in re.split(rb"\r\n(?![ \t])", block):
        if not line:
            continue
        name = line.split(b":", 1)[0]
        out.append([name, line])
    return out


def _join(fields):
    return b"".join(f[1] + b"\r\n" for f in fields)


def _pick_block(rng, msg, want=None):
    blocks = _parts(msg)
    if want is not None:
        blocks = [b for b in blocks if want in msg[b[0]:b[1]].lower()] or blocks
    return rng.choice(blocks)


def _replace_block(msg, span, fields):
    return msg[:span[0]] + _join(fields) + msg[span[1]:]


def _dup_field(rng, msg):
    span = _pick_block(rng, msg, b"content-")
    fields = _fields(msg[span[0]:span[1]])
    cands = [f for f in fields if f[0].lower().startswith(b"content-")]
    if not cands:
        return msg
    f = rng.choice(cands)
    name = f[0].lower()
    if name == b"content-type":
        val = rng.choice(CT_OTHER)
        if rng.random() < 0.5:
            val += b"; name=\"" + rng.choice(EXE_NAMES + SAFE_NAMES) + b"\""
    elif name == b"content-transfer-encoding":
        val = rng.choice([b"7bit", b"base64", b"quoted-printable", b"8bit"])
    else:
        val = rng.choice([b"inline", b"attachment; filename=\"" + rng.choice(EXE_NAMES) + b"\""])
    new = [rng.choice([f[0], f[0].upper(), f[0].lower()]), rng.choice([f[0], f[0].lower()]) +
           b": " + val]
    i = fields.index(f)
    fields.insert(i + rng.choice([0, 1]), new)
    return _replace_block(msg, span, fields)


def _case_fold(rng, msg):
    span = _pick_block(rng, msg, b"content-")
    fields = _fields(msg[span[0]:span[1]])
    for f in fields:
        if not f[0].lower().startswith(b"content-") or rng.random() < 0.4:
            continue
        head, _, val = f[1].partition(b":")
        op = rng.randrange(4)
        if op == 0:
            head = head.upper()
        elif op == 1:
            head = head.lower()
        elif op == 2:
            val = val.replace(b"; ", b";\r\n\t").replace(b";", b";\r\n ", 1)
        else:
            head = head + rng.choice([b" ", b"\t"])
        f[1] = head + b":" + val
    return _replace_block(msg, span, fields)


def _rfc2231(rng, msg):
    m = list(re.finditer(rb"\b(name|filename)=\"([^\"\r\n]+)\"", msg))
    if not m:
        return msg
    m = rng.choice(m)
    key, val = m.group(1), m.group(2)
    op = rng.randrange(6)
    if op == 0:  # sections
        cut = max(1, len(val) // 2)
        new = b"%s*0=\"%s\"; %s*1=\"%s\"" % (key, val[:cut], key, val[cut:])
    elif op == 1:  # encoded
        new = b"%s*=UTF-8''%s" % (key, b"".join(b"%%%02X" % c if c in b".%\" " else bytes([c])
                                               for c in val))
    elif op == 2:  # both forms, same value
        new = m.group(0) + b"; %s*=UTF-8''%s" % (key, val)
    elif op == 3:  # both forms, other value
        new = m.group(0) + b"; %s*=UTF-8''%s" % (key, rng.choice(EXE_NAMES + SAFE_NAMES))
    elif op == 4:  # a section twice
        new = b"%s*0=\"%s\"; %s*1=\".pdf\"; %s*1=\".exe\"" % (key, val.split(b".")[0], key, key)
    else:  # a missing section
        new = b"%s*0=\"%s\"; %s*2=\".exe\"" % (key, val.split(b".")[0], key)
    return msg[:m.start()] + new + msg[m.end():]


def _boundaries(msg):
    return re.findall(rb"boundary=\"?([^\";\r\n]+)\"?", msg, re.I)


def _boundary(rng, msg):
    bs = _boundaries(msg)
    if not bs:
        return msg
    b = rng.choice(bs)
    close = b"\r\n--" + b + b"--"
    op = rng.randrange(6)
    if op == 0 and close in msg:  # unterminated
        return msg.replace(close, b"", 1)
    if op == 1 and close in msg:  # a part after the closing boundary
        part = (b"\r\nContent-Type: application/octet-stream; name=\"" + rng.choice(EXE_NAMES) +
                b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAA=\r\n")
        return msg.replace(close, close + part, 1)
    if op == 2:  # a line that begins with the boundary and goes on
        return msg.replace(b"\r\n--" + b + b"\r\n", b"\r\n--" + b + b"x\r\n", 1)
    if op == 3:  # a nested multipart whose boundary begins like the outer one
        inner = b + b"-inner"
        nested = (b"\r\n--" + b + b"\r\nContent-Type: multipart/mixed; boundary=\"" + inner +
                  b"\"\r\n\r\n--" + inner + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" +
                  inner + b"--")
        return msg.replace(close, nested + close, 1)
    if op == 4:  # a bare CR before a boundary
        return msg.replace(b"\r\n--" + b + b"\r\n", b"\r\n.\r--" + b + b"\r\n", 1)
    # white space after the boundary (harmless)
    return msg.replace(b"\r\n--" + b + b"\r\n", b"\r\n--" + b + b" \t\r\n", 1)


def _encoding(rng, msg):
    op = rng.randrange(5)
    if op == 0:  # an RFC 2047 file name
        m = re.search(rb"name=\"([^\"\r\n]+)\"", msg)
        if m:
            import base64
            enc = b"=?UTF-8?B?" + base64.b64encode(m.group(1)) + b"?="
            return msg[:m.start(1)] + enc + msg[m.end(1):]
    if op == 1:
        return re.sub(rb"(?i)(content-transfer-encoding:) ?base64", rb"\1 BASE64", msg, count=1)
    if op == 2:
        return re.sub(rb"(?i)(content-transfer-encoding:) ?base64", rb"\1 base64 (binary)", msg,
                      count=1)
    if op == 3:
        return re.sub(rb"(?i)(content-transfer-encoding:) ?base64", rb"\1 base64 7bit", msg,
                      count=1)
    return re.sub(rb"(?i)(content-type: ?multipart/[a-z]+;[^\r\n]*)\r\n",
                  rb"\1\r\nContent-Transfer-Encoding: base64\r\n", msg, count=1)


def _bytes(rng, msg):
    spans = _parts(msg)[1:]
    if not spans:
        return msg
    span = rng.choice(spans)
    fields = _fields(msg[span[0]:span[1]])
    op = rng.randrange(4)
    junk = [b"X-Note: a\x00b", b"X-Note: a\rContent-Type: application/x-msdownload",
            b"X-\xc3\xa9t\xc3\xa9: 1", b"this line is not a field"][op]
    fields.insert(0, [b"", junk])
    return _replace_block(msg, span, fields)


MUTATIONS = [_dup_field, _case_fold, _rfc2231, _boundary, _encoding, _bytes]


def mutate(rng, msg_bytes):
    msg = msg_bytes
    for _ in range(rng.randint(1, 3)):
        try:
            msg = rng.choice(MUTATIONS)(rng, msg)
        except (ValueError, IndexError):
            pass
    return msg
