"""What the mailfort_crypt tests look for on disk.

MAGIC is the first bytes of every stored ciphertext (lib/mf-mailcrypt.h);
walk() lists every file under a directory, scan_for() the ones holding a
byte string (a file that goes away while being read is skipped),
maildir_files() the messages of one Maildir folder by name, and
all_ciphertext() says whether every one of some files (at least one) is a
stored ciphertext.
"""
import os

MAGIC = b"\x89MFC\r\n\x1a\n"


def walk(d):
    out = []
    for root, _dirs, files in os.walk(d):
        out += [os.path.join(root, f) for f in files]
    return out


def scan_for(paths, needle):
    hits = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                if needle in f.read():
                    hits.append(p)
        except OSError:
            pass
    return hits


def maildir_files(home, folder=""):
    """The message files of a folder (INBOX: "") of the Maildir in home."""
    base = os.path.join(home, "Maildir", ("." + folder) if folder else "")
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(base, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    return out


def all_ciphertext(paths):
    for p in paths:
        with open(p, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return False
    return bool(paths)
