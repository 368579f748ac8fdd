"""Encoding mutations: how an attachment is carried and named.

mutate(rng, msg_bytes) -> bytes picks one attachment and either moves it
into the message text as a uuencode, uuencode -m, yEnc or BinHex 4.0 block
(which mail and news clients show as an attachment), or changes its name:
Unicode, a right-to-left override, trailing dots and spaces, upper case, an
RFC 2231 encoded name, or no name at all.  rng.log gets one line per choice.
"""
import base64
import binascii
import email
import email.encoders
import email.policy
from email.mime.text import MIMEText


def uuencode(name, data):
    out = ["begin 644 %s" % name]
    for i in range(0, len(data), 45):
        out.append(binascii.b2a_uu(data[i:i + 45], backtick=True).decode().rstrip("\n"))
    out += ["`", "end"]
    return "\r\n".join(out)


def uuencode_b64(name, data):
    b = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return "begin-base64 644 %s\r\n%s====" % (name, b)


def yenc(name, data):
    out, line = [], bytearray()
    for c in data:
        e = (c + 42) & 0xff
        if e in (0, 10, 13, 61) or (not line and e in (9, 32, 46)):
            line += b"=" + bytes([(e + 64) & 0xff])
        else:
            line.append(e)
        if len(line) >= 128:
            out.append(bytes(line))
            line = bytearray()
    if line:
        out.append(bytes(line))
    head = b"=ybegin line=128 size=%d name=%s" % (len(data), name.encode())
    tail = b"=yend size=%d" % len(data)
    return b"\r\n".join([head] + out + [tail]).decode("latin-1")


HQX = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"


def _crc(data):
    crc = 0
    for b in data:
        for i in range(8):
            bit = (b >> (7 - i)) & 1
            c = crc & 0x8000
            crc = ((crc << 1) | bit) & 0xffff
            if c:
                crc ^= 0x1021
    for _ in range(16):
        c = crc & 0x8000
        crc = (crc << 1) & 0xffff
        if c:
            crc ^= 0x1021
    return crc.to_bytes(2, "big")


def binhex(name, data):
    nb = name.encode("latin-1", "replace")[:63]
    head = bytes([len(nb)]) + nb + b"\0" + b"????" + b"????" + b"\0\0" + \
        len(data).to_bytes(4, "big") + (0).to_bytes(4, "big")
    raw = head + _crc(head) + data + _crc(data) + _crc(b"")
    rle = raw.replace(b"\x90", b"\x90\x00")   # no runs compressed, 0x90 escaped
    bits, acc, out = 0, 0, []
    for b in rle:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 6:
            bits -= 6
            out.append(HQX[(acc >> bits) & 63])
    if bits:
        out.append(HQX[(acc << (6 - bits)) & 63])
    text = ":" + "".join(out) + ":"
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "(This file must be converted with BinHex 4.0)\r\n" + "\r\n".join(lines)


ODD = [
    ("rtl-override", lambda n: n.rsplit(".", 1)[0] + "\u202efdp." + n.rsplit(".", 1)[-1]
     if "." in n else n),
    ("trailing-dot", lambda n: n + "."),
    ("trailing-spaces", lambda n: n + "  "),
    ("upper", lambda n: n.upper()),
    ("mixed-case", lambda n: "".join(c.upper() if i % 2 else c for i, c in enumerate(n))),
    ("unicode", lambda n: "보고서_" + n),
    ("double-ext", lambda n: "invoice.pdf." + n.rsplit(".", 1)[-1] if "." in n else n),
    ("path", lambda n: "..\\..\\" + n),
    ("no-name", lambda n: None),
]


def mutate(rng, msg_bytes):
    msg = email.message_from_bytes(msg_bytes, policy=email.policy.default)
    parts = [p for p in msg.walk() if not p.is_multipart() and p.get_filename()]
    if not parts:
        rng.log.append("encoding: no attachment")
        return msg_bytes
    part = rng.choice(parts)
    name = part.get_filename()
    data = part.get_payload(decode=True) or b""
    if rng.random() < 0.45 and msg.is_multipart():
        kind = rng.choice(["uuencode", "uuencode-base64", "yenc", "binhex"])
        block = {"uuencode": uuencode, "uuencode-base64": uuencode_b64, "yenc": yenc,
                 "binhex": binhex}[kind](name, data)
        text = "Please see the file below.\r\n\r\n%s\r\n\r\nRegards\r\n" % block
        cte = rng.choice(["7bit", "quoted-printable", "base64"]) if kind != "yenc" else \
            rng.choice(["8bit", "quoted-printable", "base64"])
        new = MIMEText(text, "plain", "latin-1" if kind == "yenc" else "us-ascii")
        del new["Content-Transfer-Encoding"]
        if cte == "base64":
            new.set_payload(text.encode("latin-1"))
            email.encoders.encode_base64(new)
        elif cte == "quoted-printable":
            new.set_payload(text.encode("latin-1"))
            email.encoders.encode_quopri(new)
        else:
            new["Content-Transfer-Encoding"] = cte
        parent = next(p for p in msg.walk() if p.is_multipart() and part in p.get_payload())
        payload = parent.get_payload()
        payload[payload.index(part)] = new
        rng.log.append("encoding %s in a text part (%s): %s" % (kind, cte, name))
        return msg.as_bytes(policy=email.policy.SMTP)
    label, fn = rng.choice(ODD)
    new = fn(name)
    if new is None:
        del part["Content-Disposition"]
        part["Content-Disposition"] = "attachment"
        part.del_param("name")
    else:
        part.set_param("filename", new, header="Content-Disposition")
        part.set_param("name", new)
    rng.log.append("name %s: %r -> %r" % (label, name, new))
    return msg.as_bytes(policy=email.policy.SMTP)
