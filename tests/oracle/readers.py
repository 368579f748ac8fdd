"""Independent readers of a delivered message: what a recipient could get out of it.

files_from_email(raw)      Python's email package: every leaf part's decoded
                           content and name, and the uuencode / yEnc /
                           BinHex blocks in text parts (decoded here, not by
                           the milter's code).
unpack(name, data, depth)  bsdtar, 7z and unzip on a file, recursively: every
                           file any of them can extract (with the password
                           the generator uses), as (path, bytes).
dangerous(name, data)      why a file would be blocked by the example policy
                           (name or content), or None.
"""
import base64
import binascii
import email
import email.policy
import os
import shutil
import subprocess
import tempfile

BLOCKED_EXT = set(("exe,com,scr,pif,bat,cmd,vbs,vbe,js,jse,wsf,wsh,msi,msp,hta,cpl,jar,ps1,lnk,"
                   "reg,dll,sys,iso,img,vhd,scf,chm,application,gadget").split(","))
PASSWORD = "s3cret"


def dangerous(name, data):
    if name:
        n = name.rstrip(". \t")
        base = n.replace("\\", "/").rsplit("/", 1)[-1]
        if "." in base and base.rsplit(".", 1)[1].lower() in BLOCKED_EXT:
            return "name %r" % name
    if data[:2] == b"MZ":
        return "windows executable content"
    if data[:4] == b"\x7fELF":
        return "ELF content"
    if data[:2] == b"#!":
        return "script content"
    if data[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "Mach-O content"
    if data[:8] == b"L\0\0\0\x01\x14\x02\0":
        return "Windows shortcut content"
    return None


def _lines(text):
    return text.replace("\r\n", "\n").split("\n")


def embedded_blocks(text):
    """(name, bytes) of uuencode, yEnc and BinHex blocks, decoded independently."""
    out, lines, i = [], _lines(text), 0
    while i < len(lines):
        ln = lines[i]
        parts = ln.split(" ", 2)
        if parts[0] in ("begin", "begin-base64") and len(parts) == 3 and parts[1].isdigit():
            name, data, i = parts[2], b"", i + 1
            while i < len(lines) and lines[i] not in ("end", "===="):
                try:
                    data += (base64.b64decode(lines[i]) if parts[0] == "begin-base64"
                             else binascii.a2b_uu(lines[i]))
                except (binascii.Error, ValueError):
                    pass
                i += 1
            out.append((name, data))
        elif ln.startswith("=ybegin ") and " name=" in ln:
            name, data, i = ln.split(" name=", 1)[1], bytearray(), i + 1
            while i < len(lines) and not lines[i].startswith("=yend"):
                s = lines[i].encode("latin-1", "replace")
                j = 0
                if not s.startswith(b"=ypart"):
                    while j < len(s):
                        c = s[j]
                        if c == 0x3d and j + 1 < len(s):
                            j += 1
                            c = (s[j] - 64) & 0xff
                        data.append((c - 42) & 0xff)
                        j += 1
                i += 1
            out.append((name, bytes(data)))
        elif ln.startswith("(This file must be converted with BinHex"):
            body = "".join(lines[i + 1:])
            i += 1
            try:
                out.append(_binhex(body))
            except (ValueError, IndexError):
                pass
        i += 1
    return out


HQX = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"


def _binhex(body):
    s = body[body.index(":") + 1:]
    s = s[:s.index(":")]
    acc, bits, raw = 0, 0, bytearray()
    for ch in s:
        if ch in " \t":
            continue
        acc = (acc << 6) | HQX.index(ch)
        bits += 6
        if bits >= 8:
            bits -= 8
            raw.append((acc >> bits) & 0xff)
    out, k, prev = bytearray(), 0, 0
    while k < len(raw):
        b = raw[k]
        if b == 0x90 and k + 1 < len(raw):
            n = raw[k + 1]
            k += 2
            if n == 0:
                out.append(0x90)
                prev = 0x90
            else:
                out += bytes([prev]) * (n - 1)
            continue
        out.append(b)
        prev = b
        k += 1
    n = out[0]
    name = out[1:1 + n].decode("latin-1")
    off = 1 + n + 1 + 4 + 4 + 2
    dlen = int.from_bytes(out[off:off + 4], "big")
    start = off + 4 + 4 + 2
    return name, bytes(out[start:start + dlen])


def files_from_email(raw):
    """[(name or None, bytes)] for every leaf part and embedded block."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:  # noqa: BLE001 - a reader that fails reads nothing
            data = b""
        out.append((part.get_filename(), data))
        if part.get_content_maintype() == "text":
            out.extend(embedded_blocks(data.decode("latin-1")))
    return out


def _extract(tool, path, dest):
    if tool == "bsdtar":
        cmd = ["bsdtar", "-x", "-f", path, "-C", dest, "--passphrase", PASSWORD]
        env = dict(os.environ)
    elif tool == "7z":
        cmd = ["7z", "x", "-y", "-bd", "-p" + PASSWORD, "-o" + dest, path]
        env = None
    else:
        cmd = ["unzip", "-o", "-qq", "-P", PASSWORD, "-d", dest, path]
        env = None
    try:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       env=env, stdin=subprocess.DEVNULL)
    except (subprocess.SubprocessError, OSError):
        pass
    found = []
    for root, _dirs, files in os.walk(dest):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as fh:
                    found.append((os.path.relpath(p, dest), fh.read(64 * 1024 * 1024)))
            except OSError:
                pass
    return found


def unpack(name, data, depth=0, max_depth=4):
    """[(path, bytes)] every archive tool can extract from data, recursively."""
    if depth >= max_depth or len(data) < 4:
        return []
    tmp = tempfile.mkdtemp(prefix="oracle-rd.")
    out = []
    try:
        path = os.path.join(tmp, "input")
        with open(path, "wb") as f:
            f.write(data)
        seen = set()
        for tool in ("bsdtar", "7z", "unzip"):
            if shutil.which(tool) is None:
                continue
            dest = os.path.join(tmp, tool)
            os.makedirs(dest)
            for rel, content in _extract(tool, path, dest):
                if rel == "input" and content == data:
                    continue   # 7z "extracting" a plain file as itself
                key = (rel, content)
                if key in seen:
                    continue
                seen.add(key)
                full = "%s/%s" % (name or "(unnamed)", rel)
                out.append((tool, full, content))
                out.extend(unpack(full, content, depth + 1, max_depth))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
