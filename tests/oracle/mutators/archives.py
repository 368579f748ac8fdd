"""Archive mutations: wrap one attachment of the message in an archive or a
compressor, as the tools people use write them.

mutate(rng, msg_bytes) -> bytes picks one attachment (a leaf part that has a
file name) and replaces its content by an archive holding it: a format and
method libarchive, bsdtar, 7z, zip, gzip, bzip2, xz, zstd, lz4, lzip or
compress writes; sometimes with junk in front, with a password, or nested
into another archive.  The attachment's name becomes the archive's name
(with its usual suffix, or a misleading one).  rng.log gets one line per
choice so that a failure can be read and replayed.
"""
import email
import email.policy
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile

import bz2
import gzip
import lzma

HAVE = {t: shutil.which(t) is not None for t in ("bsdtar", "7z", "zip", "zstd", "lz4", "lzip",
                                                    "compress")}

# (label, suffix, function(rng, name, data, tmp) -> bytes)


def _run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def _stage(tmp, name, data):
    d = os.path.join(tmp, "in")
    os.makedirs(d, exist_ok=True)
    safe = name.replace("/", "_") or "file"
    with open(os.path.join(d, safe), "wb") as f:
        f.write(data)
    return d, safe


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def py_zip(method):
    def make(rng, name, data, tmp):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", method) as z:
            z.writestr(name, data)
        return b.getvalue()
    return make


def py_tar(mode):
    def make(rng, name, data, tmp):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode=mode) as t:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        return b.getvalue()
    return make


def bsdtar(fmt, filt=None):
    def make(rng, name, data, tmp):
        d, safe = _stage(tmp, name, data)
        out = os.path.join(tmp, "out.arc")
        cmd = ["bsdtar", "-c", "-f", out, "--format", fmt]
        if filt:
            cmd.append("--" + filt)
        _run(cmd + [safe], d)
        return _read(out)
    return make


def sevenz(kind, method=None, password=None):
    def make(rng, name, data, tmp):
        d, safe = _stage(tmp, name, data)
        out = os.path.join(tmp, "out." + kind)
        cmd = ["7z", "a", "-bd", "-y", "-t" + kind, out, safe]
        if method:
            cmd.insert(5, "-m0=" + method if kind == "7z" else "-mm=" + method)
        if password:
            cmd.insert(5, "-p" + password)
            if kind == "7z" and rng.random() < 0.5:
                cmd.insert(5, "-mhe=on")
        _run(cmd, d)
        return _read(out)
    return make


def infozip(level_or_method, password=None):
    def make(rng, name, data, tmp):
        d, safe = _stage(tmp, name, data)
        out = os.path.join(tmp, "out.zip")
        cmd = ["zip", "-q", "-X"]
        if level_or_method.startswith("-Z"):
            cmd += ["-Z", level_or_method[2:]]
        else:
            cmd.append(level_or_method)
        if password:
            cmd += ["-P", password]
        _run(cmd + [out, safe], d)
        return _read(out)
    return make


def single(tool, args=()):
    def make(rng, name, data, tmp):
        d, safe = _stage(tmp, name, data)
        _run([tool, "-f", "-q", *args, safe] if tool != "compress" else [tool, "-f", safe], d)
        for suf in (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lz", ".Z", ".lzma"):
            p = os.path.join(d, safe + suf)
            if os.path.exists(p):
                return _read(p)
        raise RuntimeError("%s wrote nothing" % tool)
    return make


def py_single(fn, keep_name):
    def make(rng, name, data, tmp):
        if fn == "gzip":
            b = io.BytesIO()
            with gzip.GzipFile(filename=name if keep_name else "", mode="wb", fileobj=b,
                               mtime=0) as g:
                g.write(data)
            return b.getvalue()
        if fn == "bzip2":
            return bz2.compress(data)
        if fn == "xz":
            return lzma.compress(data)
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    return make


FORMATS = [
    ("zip-stored", ".zip", py_zip(zipfile.ZIP_STORED)),
    ("zip-deflate", ".zip", py_zip(zipfile.ZIP_DEFLATED)),
    ("zip-bzip2", ".zip", py_zip(zipfile.ZIP_BZIP2)),
    ("zip-lzma", ".zip", py_zip(zipfile.ZIP_LZMA)),
    ("tar", ".tar", py_tar("w")),
    ("tar.gz", ".tar.gz", py_tar("w:gz")),
    ("tar.bz2", ".tbz2", py_tar("w:bz2")),
    ("tar.xz", ".txz", py_tar("w:xz")),
    ("gzip-fname", ".gz", py_single("gzip", True)),
    ("gzip-noname", ".gz", py_single("gzip", False)),
    ("bzip2", ".bz2", py_single("bzip2", False)),
    ("xz", ".xz", py_single("xz", False)),
    ("lzma-alone", ".lzma", py_single("lzma", False)),
]
if HAVE["bsdtar"]:
    FORMATS += [
        ("bsdtar-cpio", ".cpio", bsdtar("cpio")),
        ("bsdtar-newc", ".cpio", bsdtar("newc")),
        ("bsdtar-ar", ".a", bsdtar("ar")),
        ("bsdtar-iso", ".iso", bsdtar("iso9660")),
        ("bsdtar-xar", ".xar", bsdtar("xar")),
        ("bsdtar-pax-zstd", ".tar.zst", bsdtar("pax", "zstd")),
        ("bsdtar-ustar-lz4", ".tar.lz4", bsdtar("ustar", "lz4")),
        ("bsdtar-ustar-lzip", ".tar.lz", bsdtar("ustar", "lzip")),
        ("bsdtar-ustar-compress", ".tar.Z", bsdtar("ustar", "compress")),
        ("bsdtar-7zip", ".7z", bsdtar("7zip")),
        ("bsdtar-zip", ".zip", bsdtar("zip")),
        ("bsdtar-shar", ".shar", bsdtar("shar")),
    ]
if HAVE["7z"]:
    FORMATS += [
        ("7z-lzma2", ".7z", sevenz("7z", "LZMA2")),
        ("7z-lzma", ".7z", sevenz("7z", "LZMA")),
        ("7z-ppmd", ".7z", sevenz("7z", "PPMd")),
        ("7z-bzip2", ".7z", sevenz("7z", "BZip2")),
        ("7z-deflate", ".7z", sevenz("7z", "Deflate")),
        ("7z-deflate64", ".7z", sevenz("7z", "Deflate64")),
        ("7z-copy", ".7z", sevenz("7z", "Copy")),
        ("7z-zip-deflate64", ".zip", sevenz("zip", "Deflate64")),
        ("7z-zip-bzip2", ".zip", sevenz("zip", "BZip2")),
        ("7z-zip-lzma", ".zip", sevenz("zip", "LZMA")),
        ("7z-zip-ppmd", ".zip", sevenz("zip", "PPMd")),
        ("7z-lzma-d16", ".7z", sevenz("7z", "LZMA:d16")),
        ("7z-tar", ".tar", sevenz("tar")),
        ("7z-wim", ".wim", sevenz("wim")),
    ]
if HAVE["zip"]:
    FORMATS += [("infozip-bzip2", ".zip", infozip("-Zbzip2")),
                ("infozip-store", ".zip", infozip("-0"))]
for tool, suf, args in (("zstd", ".zst", ()), ("lz4", ".lz4", ()), ("lzip", ".lz", ())):
    if HAVE[tool]:
        FORMATS.append((tool, suf, single(tool, args)))

ENCRYPTED = []
if HAVE["7z"]:
    ENCRYPTED += [("7z-aes", ".7z", sevenz("7z", "LZMA2", password="s3cret")),
                  ("zip-aes256", ".zip", sevenz("zip", "Deflate", password="s3cret"))]
if HAVE["zip"]:
    ENCRYPTED.append(("zip-zipcrypto", ".zip", infozip("-6", password="s3cret")))


def wrap(rng, name, data):
    """data (named name) inside a random archive: (new name, bytes)."""
    tmp = tempfile.mkdtemp(prefix="oracle-arc.")
    try:
        pool = ENCRYPTED if ENCRYPTED and rng.random() < 0.08 else FORMATS
        label, suffix, make = rng.choice(pool)
        try:
            out = make(rng, name, data, tmp)
        except (subprocess.SubprocessError, OSError, RuntimeError) as e:
            rng.log.append("archive %s failed to build (%s): left as is" % (label, e))
            return name, data
        base = os.path.splitext(name)[0] if rng.random() < 0.7 else name
        new = base + suffix
        r = rng.random()
        if r < 0.1:
            new = base + rng.choice([".pdf", ".txt", ".jpg", ""])   # a misleading name
        elif r < 0.15:
            new = new.upper()
        if rng.random() < 0.12:
            junk = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 17, 512, 4096])))
            if rng.random() < 0.5:
                junk = b"%PDF-1.4\n" + junk
            out = junk + out
            label += "+leading-junk(%d)" % len(junk)
        rng.log.append("archive %s: %s -> %s" % (label, name, new))
        return new, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def attachments(msg):
    return [p for p in msg.walk() if not p.is_multipart() and p.get_filename()]


def mutate(rng, msg_bytes):
    msg = email.message_from_bytes(msg_bytes, policy=email.policy.default)
    parts = attachments(msg)
    if not parts:
        rng.log.append("archive: no attachment")
        return msg_bytes
    part = rng.choice(parts)
    name = part.get_filename()
    data = part.get_payload(decode=True) or b""
    for _ in range(1 + (rng.random() < 0.2) + (rng.random() < 0.05)):
        name, data = wrap(rng, name, data)
    part.set_payload(data)
    del part["Content-Transfer-Encoding"]
    email.encoders.encode_base64(part)
    part.set_param("name", name)
    part.set_param("filename", name, header="Content-Disposition")
    return msg.as_bytes(policy=email.policy.SMTP)


import email.encoders  # noqa: E402  (after the functions that use it)
