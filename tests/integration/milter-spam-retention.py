#!/usr/bin/env python3
"""mailfortctl spam: the kept training examples stay within their bounds.

With [milter] keep_examples = 20, training three batches of 10 spam keeps
the 20 newest: the first batch is gone, the model is fitted to what is
kept and still classifies.  Retraining a message (relabelled and back)
makes it new again, so it outlives older ones.  "spam prune --older-than"
drops examples by age and "--keep N" down to N per class, each fitting
the model again; bad arguments are refused with exit 2 and the value named
before any database is touched.  "spam stats" shows the kept examples and
the cap; the pruning index exists and the milter's role still cannot read
the examples.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ["MF_SRC"], "tests/harness"))
from mailfort import TMP, Site, free_port, mailfortctl_path, run, tap, write_config  # noqa: E402
from milterlib import train_corpus  # noqa: E402

site = Site("milter-keep", extra={"milter": {"min_training": 10, "keep_examples": 20}})
maildir, mbox = train_corpus(TMP, n=30)

# Three batches of 10 spam messages, trained one after the other (A oldest).
files = sorted(os.path.join(maildir, sub, f) for sub in ("cur", "new")
               for f in os.listdir(os.path.join(maildir, sub)))
batch = {}
for i, name in enumerate("ABC"):
    d = os.path.join(TMP, "spam-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in files[10 * i:10 * i + 10]:
        shutil.copy(f, d)
    batch[name] = d


def kept(spam=True):
    return {r[0] for r in site.sql("SELECT encode(digest, 'hex') FROM mailfort.spam_examples"
                                   " WHERE is_spam = %s" % ("true" if spam else "false"))}


def train(*args):
    r = site.ctl("spam", "train", *args)
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------ the cap in training
rc, out = train("--spam", batch["A"], "--ham", mbox)
tap.ok(rc == 0 and "trained 10 spam and 30 ham messages" in out and
       "model fitted to 10 spam and 20 ham examples" in out and
       "removed the oldest 0 spam and 10 ham examples beyond keep_examples = 20" in out,
       "a run of 30 ham keeps 20 of them (keep_examples = 20) and says what it removed", out)
tap.eq(len(kept(False)), 20, "20 ham examples are stored")
dA = kept()
rc, out = train("--spam", batch["B"])
tap.ok(rc == 0 and "model fitted to 20 spam and 20 ham examples" in out and
       "removed the oldest" not in out, "20 spam: at the cap, nothing removed", out)
dB = kept() - dA
rc, out = train("--spam", batch["C"])
tap.ok(rc == 0 and "model fitted to 20 spam and 20 ham examples" in out and
       "removed the oldest 10 spam and 0 ham examples" in out,
       "30 spam trained in three runs: 20 kept, 10 removed", out)
dC = kept() - dA - dB
tap.eq((len(dA), len(dB), len(dC)), (10, 10, 10), "each batch is 10 distinct examples")
tap.ok(kept() == dB | dC, "the oldest batch is the one removed")
tap.eq(site.scalar("SELECT spam_messages || '/' || ham_messages FROM mailfort.spam_totals"),
       "20/20", "the stored model counts the kept examples only")
r = site.ctl("spam", "forget", batch["A"])
tap.ok(r.returncode == 0 and "forgot 0 of 10 messages" in r.stdout,
       "spam forget finds none of the removed batch", r.stdout + r.stderr)

# ------------------------------------------------------------ the model still works
r = site.ctl("spam", "classify", batch["A"])
lines = r.stdout.splitlines()
tap.ok(r.returncode == 0 and len(lines) == 10 and all(" spam " in x for x in lines),
       "the model fitted to the kept examples classifies spam it no longer keeps", r.stdout + r.stderr)
r = site.ctl("spam", "classify", mbox)
lines = r.stdout.splitlines()
tap.ok(r.returncode == 0 and len(lines) == 30 and all(" ham " in x for x in lines),
       "... and ham", r.stdout + r.stderr)

# ------------------------------------------------------------ retrained is new
# B moves to ham and back: newer than C now, so A trained again drops C.
rc, out = train("--ham", batch["B"])
tap.ok(rc == 0 and "model fitted to 10 spam and 20 ham examples" in out,
       "relabelling B as ham: ham capped at 20 again", out)
tap.ok(dB <= kept(False), "the relabelled examples are the newest ham and stay")
rc, out = train("--spam", batch["B"])
tap.ok(rc == 0 and "model fitted to 20 spam and 10 ham examples" in out, "... and back to spam", out)
rc, out = train("--spam", batch["A"])
tap.ok(rc == 0 and "removed the oldest 10 spam and 0 ham examples" in out, "A trained again", out)
tap.ok(kept() == dA | dB, "a relabelled example counts as new: C, older, is removed, B stays")

# ------------------------------------------------------------ stats
r = site.ctl("spam", "stats")
tap.ok(r.returncode == 0 and
       "kept examples:          20 spam, 10 ham (at most 20 of each: [milter] keep_examples)"
       in r.stdout, "spam stats shows the kept examples per class and the cap", r.stdout + r.stderr)

# ------------------------------------------------------------ prune
# A site that trained B a year ago: its examples are 400 days old.
site.sql("UPDATE mailfort.spam_examples SET trained_at = now() - interval '400 days'"
         " WHERE encode(digest, 'hex') = ANY (string_to_array(:'list', ','))",
         params={"list": ",".join(sorted(dB))})
r = site.ctl("spam", "prune", "--older-than", "365d")
tap.ok(r.returncode == 0 and "removed 10 spam and 0 ham examples" in r.stdout and
       "kept 10 spam and 10 ham examples (at most 20 of each)" in r.stdout,
       "prune --older-than 365d removes the examples trained a year ago", r.stdout + r.stderr)
tap.ok(kept() == dA, "exactly those are gone")
tap.eq(site.scalar("SELECT spam_messages || '/' || ham_messages FROM mailfort.spam_totals"),
       "10/10", "prune fits the model again to what is kept")
r = site.ctl("spam", "prune")
tap.ok(r.returncode == 0 and "removed 0 spam and 0 ham examples" in r.stdout,
       "prune without arguments applies keep_examples: nothing over it", r.stdout + r.stderr)
ham_before = kept(False)
r = site.ctl("spam", "prune", "--keep", "4")
tap.ok(r.returncode == 0 and "removed 6 spam and 6 ham examples" in r.stdout and
       "kept 4 spam and 4 ham examples (at most 4 of each)" in r.stdout,
       "prune --keep 4 keeps 4 of each class", r.stdout + r.stderr)
tap.ok(kept(False) <= ham_before and len(kept(False)) == 4 and len(kept()) == 4,
       "4 spam and 4 ham examples are stored")
r = site.ctl("spam", "prune", "--keep", "0")
tap.ok(r.returncode == 0 and "kept 0 spam and 0 ham examples" in r.stdout and
       site.scalar("SELECT count(*) FROM mailfort.spam_tokens") == "0",
       "prune --keep 0 removes every example and leaves an empty model", r.stdout + r.stderr)

# ------------------------------------------------------------ bad arguments
# A configuration whose database cannot be reached: a refusal with exit 2
# shows the arguments were checked before connecting.
away = dict((k, dict(v)) for k, v in site.sections.items())
away["database"]["conninfo"] = "host=127.0.0.1 port=%d dbname=none" % free_port()
away_conf = write_config(os.path.join(TMP, "away.conf"), away)
for args, named in ((["--keep", "abc"], "'abc'"), (["--keep", "-1"], "'-1'"),
                    (["--keep", "12x"], "'12x'"), (["--older-than", "10x"], "'10x'"),
                    (["--older-than", "0d"], "'0d'"), (["--older-than", ""], "''"),
                    (["--older-than", "365dd"], "'365dd'"), (["leftover"], "'leftover'")):
    r = run([mailfortctl_path(), "--config", away_conf, "spam", "prune"] + args)
    tap.ok(r.returncode == 2 and named in r.stderr and
           ("--keep" in r.stderr or "--older-than" in r.stderr or "unexpected" in r.stderr),
           "spam prune %s: exit 2 naming %s" % (" ".join(args), named), (r.returncode, r.stderr))
r = run([mailfortctl_path(), "--config", away_conf, "spam", "prune", "--keep", "5"])
tap.ok(r.returncode == 1, "a good prune with that configuration does try the database",
       (r.returncode, r.stderr))

bad = dict((k, dict(v)) for k, v in site.sections.items())
bad["milter"]["keep_examples"] = 0
bad_conf = write_config(os.path.join(TMP, "bad.conf"), bad)
r = run([mailfortctl_path(), "--config", bad_conf, "spam", "stats"])
tap.ok(r.returncode == 1 and "keep_examples" in r.stderr, "keep_examples = 0 is refused, named",
       (r.returncode, r.stderr))

# ------------------------------------------------------------ schema
tap.ok("(is_spam, trained_at, digest)" in (site.scalar(
    "SELECT indexdef FROM pg_indexes WHERE indexname = 'spam_examples_class_age'") or ""),
    "the examples are indexed by class and age")
tap.eq(site.scalar("SELECT has_table_privilege('mailfort_milter', 'mailfort.spam_examples',"
                   " 'SELECT')"), "f", "the milter's role still cannot read the examples")

tap.done()
