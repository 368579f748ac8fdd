#!/usr/bin/env python3
"""mailfort_crypt's read path, byte for byte against a plain Dovecot.

The same 305 generated messages (tests/harness/mailgen.py: sizes around
the 64 KiB chunk size, 8-bit, binary and NUL-bearing parts, deep
multiparts, messages without a final newline, broken MIME, list and
newsletter mail with reply chains) are appended, with the same flags and
internal dates, to three Dovecots (maildir): "crypt" with mailfort_crypt,
"nocache", a plain Dovecot with the mail cache off as mailfort_crypt keeps
it (mail_never_cache_fields = *), and "plain", a stock Dovecot.  Then every
command below is sent to all three over IMAP or POP3 and the answers are
compared byte for byte, after blanking only what differs between any two
servers (UIDVALIDITY and the timings in tagged OKs).

crypt must answer exactly as nocache: any difference fails the check of
its kind and names the message and the command.  Against stock plain,
Dovecot's own cache changes two answers, depending on what the cache held
when the command came (plain gives both answers itself, for the same
message in INBOX and in a copy): BINARY[] is sent as a literal8 (~{n})
when binary.parts had to be computed, and HEADER.FIELDS of a header-only
message without a final newline lacks the blank line when taken from the
cache.  Differences from plain are allowed only of those two kinds, and
only where crypt agrees with nocache.  Commands:

  FETCH   per message: BINARY.SIZE of every part (first, on a fresh mail,
          for every other message: the path of the BINARY crash),
          RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY INTERNALDATE FLAGS,
          BODY[], HEADER, TEXT, HEADER.FIELDS, HEADER.FIELDS.NOT, every
          section with its MIME header (and HEADER/TEXT of encapsulated
          messages), BINARY[] and BINARY.PEEK[n] of every part, partial
          BODY[]<o.l> around the chunk boundaries, partial BINARY and TEXT;
          and over the whole mailbox BINARY.SIZE[1] and the sizes
  SEARCH  body, text, header and size criteria, in ASCII and UTF-8
  SORT    arrival, date, subject, from, to, cc, size, reversed
  THREAD  REFERENCES and ORDEREDSUBJECT
  COPY, MOVE   and everything above (per message) in the target folders
  POP3    LIST, RETR and TOP of every message left in INBOX

The checks also make sure the comparison means something: the
encrypted Dovecot's files are all ciphertext, and its stored sizes hit
the chunk boundaries.
"""
import os
import poplib
import re
import sys
import time

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import Site, tap  # noqa: E402
from stack import Dovecot  # noqa: E402
from cryptlib import all_ciphertext, maildir_files  # noqa: E402
from mailgen import CHUNK, corpus, lf_size  # noqa: E402
from rawimap import RawImap, first_difference, normalize  # noqa: E402

USER, PASSWORD = "alice@example.test", "pw-alice"
MAX_REPORTED = 15

started = time.time()
msgs = corpus(seed=20261208)
site = Site("crypt_diff")
servers = {
    "plain": Dovecot("dfp", users={USER: PASSWORD}),
    "nocache": Dovecot("dfn", users={USER: PASSWORD}, extra="mail_never_cache_fields = *\n"),
    "crypt": Dovecot("dfc", site=site, plugins=["mailfort_crypt"], users={USER: PASSWORD}),
}
servers["crypt"].own_keys(site)
for dc in servers.values():
    dc.start()


MAX_LOST = 25


class Conn:
    """One IMAP session per server; reopened (same mailbox) if it drops.
    After MAX_LOST dropped connections the server is given up on (its
    answers are then all "<given up>"), so a broken build fails fast."""

    def __init__(self, dc):
        self.dc = dc
        self.box = None
        self.lost = 0
        self.open()

    def open(self):
        self.c = RawImap(self.dc.imap_port)
        self.c.login(USER, PASSWORD)
        if self.box:
            self.c.cmd(b"SELECT " + self.box)

    def run(self, fn):
        if self.lost >= MAX_LOST:
            return b"<given up after %d lost connections>" % self.lost
        try:
            return fn(self.c)
        except (ConnectionError, OSError) as e:
            self.lost += 1
            try:
                self.open()
            except (ConnectionError, OSError):
                self.lost = MAX_LOST
            return b"<connection lost: %s>" % str(e).encode()


conns = {name: Conn(dc) for name, dc in servers.items()}
diffs = {}  # kind -> ["message: command: difference"] (crypt vs nocache)
counts = {}  # kind -> commands compared
cache_variants = {"literal8": 0, "header end": 0}
plain_diffs = []  # crypt vs stock plain, other than cache_variants


def cache_variant(p, c):
    """Which of the two cache-dependent answers tells p from c, or None."""
    if p == c.replace(b" ~{", b" {") or c == p.replace(b" ~{", b" {"):
        return "literal8"
    unsized = re.compile(rb"\{\d+\}\r\n")
    if (unsized.sub(b"{}\r\n", p).replace(b"\r\n\r\n", b"\r\n") ==
            unsized.sub(b"{}\r\n", c).replace(b"\r\n\r\n", b"\r\n")):
        return "header end"
    return None


def both(kind, what, fn):
    """Run fn(RawImap) on every server; record crypt's differences."""
    out = {name: normalize(conn.run(fn)) for name, conn in conns.items()}
    counts[kind] = counts.get(kind, 0) + 1
    if out["nocache"] != out["crypt"]:
        diffs.setdefault(kind, []).append("%s: %s" % (what, first_difference(
            out["nocache"], out["crypt"])))
    elif out["plain"] != out["crypt"]:
        variant = cache_variant(out["plain"], out["crypt"])
        if variant is None:
            plain_diffs.append("%s: %s" % (what, first_difference(out["plain"], out["crypt"])))
        else:
            cache_variants[variant] += 1
    return out["crypt"]


def command(kind, what, line):
    return both(kind, "%s: %s" % (what, line.decode(errors="replace")[:200]),
                lambda c: c.cmd(line))


def select(box):
    for conn in conns.values():
        conn.box = box
    return command("SELECT", box.decode(), b"SELECT " + box)


def report(kind, what):
    d = diffs.get(kind, [])
    more = "\n... and %d more" % (len(d) - MAX_REPORTED) if len(d) > MAX_REPORTED else ""
    tap.ok(not d, "%s: %d commands, %d differences (%s)" % (kind, counts.get(kind, 0), len(d),
                                                              what),
           "\n".join(d[:MAX_REPORTED]) + more)


caps = command("CAPABILITY", "-", b"CAPABILITY")
tap.ok(all(c in caps for c in (b"BINARY", b"SORT", b"THREAD=REFERENCES", b"MOVE")),
       "every server announces BINARY, SORT, THREAD=REFERENCES and MOVE", caps)

# ---------------------------------------------------------------- APPEND
select(b"INBOX")
months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ok_appends = 0
for i, m in enumerate(msgs):
    t = time.gmtime(1700000000 + 3600 * i)
    date = b'"%02d-%s-%04d %02d:%02d:%02d +0900"' % (t.tm_mday, months[t.tm_mon - 1].encode(),
                                                     t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    flags = [b"", b"\\Seen", b"\\Flagged $Label1", b"\\Answered \\Seen"][i % 4]
    r = both("APPEND", "message %d (%s)" % (i + 1, m.name),
             lambda c, m=m, flags=flags, date=date: c.append(b"INBOX", m.data, flags, date))
    ok_appends += re.search(rb"^t\d+ OK", r.splitlines()[-1]) is not None
tap.eq(ok_appends, len(msgs), "all %d messages appended to every server" % len(msgs))
report("APPEND", "responses, APPENDUID")

crypt_files = maildir_files(servers["crypt"].home("alice"))
tap.ok(len(crypt_files) == len(msgs) and all_ciphertext(crypt_files),
       "the encrypted Dovecot stored every message as ciphertext", len(crypt_files))
stored = sorted(int(m.group(1)) for m in (re.search(r",S=(\d+)", p) for p in crypt_files) if m)
near = [s for s in stored if any(abs(s - k * CHUNK) <= 3 for k in (1, 2, 3))]
tap.ok(len(near) >= 30 and {k * CHUNK for k in (1, 2, 3)} <= set(stored),
       "stored sizes hit the chunk boundaries (%d within 3 bytes of k*64KiB)" % len(near))

# ---------------------------------------------------------------- FETCH, per message
select(b"INBOX")


def partial_offsets(size):
    offs = {0, 1, size - 3, size // 2}
    for k in (1, 2, 3):
        for d in (-70, -2, -1, 0, 1, 40):
            offs.add(k * CHUNK + d)
    return sorted(o for o in offs if 0 <= o < size + 5)


def fetch_message(kind, uid, m, binary_first):
    what = "UID %d (%s)" % (uid, m.name)
    u = b"UID FETCH %d " % uid
    leaves = [s.encode() for s in m.leaves]
    sizes = b" ".join(b"BINARY.SIZE[%s]" % s for s in leaves)
    if binary_first:
        command(kind + " BINARY.SIZE", what, u + b"(" + sizes + b")")
    meta = command(kind + " meta", what,
                   u + b"(RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY INTERNALDATE FLAGS)")
    command(kind + " BODY[]", what, u + b"(BODY.PEEK[])")
    command(kind + " headers", what, u + b"(BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
            b"BODY.PEEK[HEADER.FIELDS (FROM SUBJECT LIST-ID CONTENT-TYPE X-NUL)] "
            b"BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED DKIM-SIGNATURE)])")
    secs = [s.encode() for s in m.sections]
    for i in range(0, len(secs), 40):
        command(kind + " sections", what,
                u + b"(" + b" ".join(b"BODY.PEEK[%s]" % s for s in secs[i:i + 40]) + b")")
    if not binary_first:
        command(kind + " BINARY.SIZE", what, u + b"(" + sizes + b")")
    command(kind + " BINARY", what, u + b"(BINARY.PEEK[])")
    for s in leaves:
        command(kind + " BINARY", what, u + b"(BINARY.PEEK[%s] BINARY.SIZE[%s])" % (s, s))
    size = re.search(rb"RFC822\.SIZE (\d+)", meta)
    size = int(size.group(1)) if size else lf_size(m.data)
    parts = b" ".join(b"BODY.PEEK[]<%d.%d>" % (o, 100 if o % 2 else 70000)
                      for o in partial_offsets(size))
    parts += b" BODY.PEEK[TEXT]<10.%d> BINARY.PEEK[%s]<3.%d>" % (
        CHUNK, leaves[-1], CHUNK + 7)
    command(kind + " partial", what, u + b"(" + parts + b")")


for i, m in enumerate(msgs):
    fetch_message("FETCH", i + 1, m, binary_first=(i % 2 == 0))
command("FETCH mailbox", "all", b"UID FETCH 1:* (BINARY.SIZE[1])")
command("FETCH mailbox", "all", b"FETCH 1:* (UID RFC822.SIZE FLAGS BODYSTRUCTURE)")
for kind in ("BINARY.SIZE", "meta", "BODY[]", "headers", "sections", "BINARY", "partial"):
    report("FETCH " + kind, "per message")
report("FETCH mailbox", "BINARY.SIZE[1] and sizes of the whole mailbox")

# ---------------------------------------------------------------- SEARCH, SORT, THREAD
word = b"procurement"
searches = [
    b"UID SEARCH ALL", b"UID SEARCH BODY %s" % word, b"UID SEARCH TEXT committee",
    b"UID SEARCH SUBJECT attachment", b"UID SEARCH FROM sender",
    b'UID SEARCH HEADER List-Id "dev.lists.example.test"', b"UID SEARCH HEADER X-Nul after",
    b"UID SEARCH LARGER 65536", b"UID SEARCH SMALLER 2000", b"UID SEARCH NOT BODY the",
    b"UID SEARCH OR SUBJECT deep BODY unsubscribe", b"UID SEARCH SENTBEFORE 1-Jan-2024",
    b"UID SEARCH SEEN FLAGGED", b"UID SEARCH BODY ZZZnothingZZZ",
    b"UID SEARCH HEADER Message-ID gen.7.", b"UID SEARCH TEXT \"annex the\"",
]
for q in searches:
    command("SEARCH", "-", q)
for text in ("보고서", "수신거부", "공지사항", "담당자"):
    data = text.encode()
    both("SEARCH", "CHARSET UTF-8 TEXT %s" % text, lambda c, data=data: c.cmd_literal(
        b"UID SEARCH CHARSET UTF-8 TEXT", data))
    both("SEARCH", "CHARSET UTF-8 SUBJECT %s" % text, lambda c, data=data: c.cmd_literal(
        b"UID SEARCH CHARSET UTF-8 SUBJECT", data))
for keys in (b"ARRIVAL", b"DATE", b"SUBJECT", b"FROM", b"TO", b"CC", b"SIZE",
             b"REVERSE SIZE", b"REVERSE DATE SUBJECT", b"DISPLAYFROM"):
    command("SORT", "-", b"UID SORT (%s) UTF-8 ALL" % keys)
command("SORT", "-", b"UID SORT (SIZE) UTF-8 BODY unsubscribe")
for alg in (b"REFERENCES", b"ORDEREDSUBJECT"):
    command("THREAD", "-", b"UID THREAD %s UTF-8 ALL" % alg)
    command("THREAD", "-", b"UID THREAD %s UTF-8 HEADER List-Id lists" % alg)
report("SEARCH", "ASCII and UTF-8 criteria over bodies and headers")
report("SORT", "every sort key")
report("THREAD", "REFERENCES and ORDEREDSUBJECT")

# ---------------------------------------------------------------- COPY, MOVE
command("COPY", "-", b"CREATE Copied")
command("COPY", "-", b"CREATE Moved")
# every 5th and every 7th message: each kind of message is in both
copy_uids = list(range(1, len(msgs) + 1, 5))
move_uids = list(range(3, len(msgs) + 1, 7))


def uid_set(uids):
    return b",".join(b"%d" % u for u in uids)


command("COPY", "-", b"UID COPY %s Copied" % uid_set(copy_uids))
command("MOVE", "-", b"UID MOVE %s Moved" % uid_set(move_uids))
command("MOVE", "-", b"UID SEARCH ALL")
for box, uids in ((b"Copied", copy_uids), (b"Moved", move_uids)):
    select(box)
    for j, uid in enumerate(uids):
        # the copies have UIDs 1.. in their folder
        fetch_message(box.decode(), j + 1, msgs[uid - 1], binary_first=(j % 2 == 1))
    command(box.decode() + " mailbox", "all", b"UID FETCH 1:* (BINARY.SIZE[1] RFC822.SIZE)")
    command(box.decode() + " mailbox", "all", b"UID SORT (SIZE) UTF-8 ALL")
    command(box.decode() + " mailbox", "all", b"UID THREAD REFERENCES UTF-8 ALL")
report("COPY", "UID COPY of %d messages" % len(copy_uids))
report("MOVE", "UID MOVE of %d messages and what is left" % len(move_uids))
for box in ("Copied", "Moved"):
    kinds = [k for k in counts if k.startswith(box + " ")]
    d = [x for k in kinds for x in diffs.get(k, [])]
    tap.ok(not d and kinds, "%s: %d commands on the copies, %d differences" % (
        box, sum(counts[k] for k in kinds), len(d)), "\n".join(d[:MAX_REPORTED]))

for name, conn in conns.items():
    tap.eq(conn.lost, 0, "%s: no IMAP connection was lost" % name)
    if conn.lost < MAX_LOST:
        conn.c.close()

# ---------------------------------------------------------------- POP3
pops = {}
for name, dc in servers.items():
    p = poplib.POP3("127.0.0.1", dc.pop3_port, timeout=60)
    p.user(USER)
    p.pass_(PASSWORD)
    pops[name] = p
pop_diffs, pop_count = [], 0


def pop_both(what, fn):
    global pop_count
    out = {}
    for name, p in pops.items():
        try:
            out[name] = fn(p)
        except poplib.error_proto as e:
            out[name] = ("error", str(e))
    pop_count += 1
    for ref in ("nocache", "plain"):
        if out[ref] != out["crypt"]:
            pop_diffs.append("%s: %s: %s / %s" % (ref, what, repr(out[ref])[:200],
                                                  repr(out["crypt"])[:200]))
    return out["crypt"]


listing = pop_both("LIST", lambda p: p.list())
n_pop = len(listing[1]) if isinstance(listing, tuple) and len(listing) > 1 else 0
left = [m for uid, m in enumerate(msgs, 1) if uid not in move_uids]
tap.eq(n_pop, len(left), "POP3 sees the %d messages left in INBOX" % len(left))
for i in range(1, min(n_pop, len(left)) + 1):
    name = left[i - 1].name
    pop_both("RETR %d (%s)" % (i, name), lambda p, i=i: p.retr(i))
    pop_both("TOP %d 0 (%s)" % (i, name), lambda p, i=i: p.top(i, 0))
    pop_both("TOP %d 7 (%s)" % (i, name), lambda p, i=i: p.top(i, 7))
for p in pops.values():
    p.quit()
tap.ok(not pop_diffs, "POP3: %d commands (LIST, RETR, TOP), %d differences" % (
    pop_count, len(pop_diffs)), "\n".join(pop_diffs[:MAX_REPORTED]))

tap.ok(not plain_diffs, "stock Dovecot: every other answer identical; %d literal8 and %d "
       "header-end answers differ as its own cache makes them differ" % (
           cache_variants["literal8"], cache_variants["header end"]),
       "\n".join(plain_diffs[:MAX_REPORTED]))

# ---------------------------------------------------------------- logs
for name, dc in servers.items():
    bad = [ln for ln in dc.log_text().splitlines() if "Panic" in ln or "Fatal" in ln or
           "mailfort_crypt" in ln and "rror" in ln]
    tap.eq(bad, [], "no panic, fatal or mailfort_crypt error in the %s Dovecot's log" % name)
total = sum(counts.values()) + pop_count
tap.diag("%d messages, %d commands compared on each server, %.0f s" % (
    len(msgs), total, time.time() - started))
for dc in servers.values():
    dc.stop()
tap.done()
