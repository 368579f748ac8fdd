/*
 * ctl-spam.c - mailfortctl spam: train the classifier, show its statistics.
 *
 * SYNOPSIS
 *   mailfortctl spam train [--spam PATH]... [--ham PATH]... [--dry-run]
 *   mailfortctl spam stats
 *   mailfortctl spam classify [--verbose] PATH...
 *   mailfortctl spam forget PATH...
 *   mailfortctl spam prune [--keep N] [--older-than AGE]
 *   mailfortctl spam tokens PATH...
 *
 * PATH is a Maildir (a directory with cur/ and new/), an mbox file (starts
 * with "From "), a single message file, or a directory of message files
 * (read recursively).  Messages are tokenized exactly as mailfort-milter
 * tokenizes them (same MIME walk, same [milter] limits) and kept as
 * examples; then the classifier is fitted again to every example ever
 * trained, all in one transaction: an interrupted run changes nothing.  A
 * message trained twice counts once; trained again under the other label,
 * its label is corrected.  Tokens are stored as keyed hashes (the key is
 * derived from the server's spam.key), never as words.  The running milters
 * pick up the new model at their next refresh ([milter] model_refresh) or
 * on SIGHUP.
 *
 * Every run keeps at most [milter] keep_examples examples of each class:
 * once the run's messages are stored, the oldest examples of a class beyond
 * that number are deleted (oldest by the time they were last trained, a
 * relabelled message being new; equal times by digest), then the model is
 * fitted, in the same transaction.
 *
 * forget deletes the kept examples of the messages at PATH (a message
 * trained by mistake) and fits the model again to the rest.
 *
 * prune deletes kept examples without training: those trained longer than
 * AGE ago (365d; s, m, h or d), and in each class all but the newest N
 * (default: [milter] keep_examples), then fits the model again to the
 * rest, in one transaction, and prints what it removed and what is kept.
 * Its arguments are checked before anything is read or connected.
 *
 * classify loads the model once and prints, for each message, the
 * classifier's spam probability, the milter's score, the action its
 * thresholds would take and the path: "0.9981 9.9 spam PATH".
 *
 * tokens prints what the classifier sees of each message, without the
 * model or the database: a line "message PATH", then one line per distinct
 * token, indented by two spaces, in the order the message gave them.
 *
 * Exit status: 0 success, 1 failure (a message that cannot be read is
 * reported and skipped; a database error fails the run), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "../milter/scan.h"
#include "ctl.h"
#include "mf-config.h"
#include "mf-db.h"

struct train {
	const struct mf_policy *pol;
	struct mf_model *model;  /* classify: loaded */
	struct mf_trainset *ts;  /* train: the run's examples */
	struct mf_token_key key; /* train */
	bool classify, verbose, show_tokens;
	uint64_t read, failed, nspam, nham;
};

static void spam_help(FILE *f)
{
	fputs("usage: mailfortctl spam train [--spam PATH]... [--ham PATH]... [--dry-run]\n"
	      "       mailfortctl spam stats\n"
	      "       mailfortctl spam classify [--verbose] PATH...\n"
	      "       mailfortctl spam forget PATH...\n"
	      "       mailfortctl spam prune [--keep N] [--older-than AGE]\n"
	      "       mailfortctl spam tokens PATH...\n"
	      "PATH: a Maildir, an mbox file, a message file or a directory of message files\n",
	      f);
}

static void one_message(struct train *tr, GMimeStream *stream, const char *name, bool spam)
{
	struct mf_tokens *toks = mf_tokens_new(MF_MAX_TOKENS);
	struct mf_verdict v;
	struct mf_error err;

	if (toks == NULL) {
		tr->failed++;
		return;
	}
	mf_verdict_init(&v);
	if (mf_mime_walk(tr->pol, stream, toks, &v, &err) < 0) {
		fprintf(stderr, "mailfortctl: %s: %s (skipped)\n", name, err.msg);
		tr->failed++;
	} else if (tr->show_tokens) {
		size_t i, n = mf_tokens_count(toks);

		printf("message %s\n", name);
		for (i = 0; i < n; i++)
			printf("  %s\n", mf_tokens_get(toks, i, NULL));
		tr->read++;
	} else if (tr->classify) {
		struct mf_bayes_params bp;

		mf_bayes_defaults(&bp);
		bp.min_training = (uint64_t)tr->pol->min_training;
		mf_classify(tr->model, toks, &bp, &v.bayes);
		mf_rules_run(tr->pol, &v);
		v.score = v.bayes.trained ? tr->pol->bayes_weight * (2.0 * v.bayes.prob - 1.0) : 0;
		for (unsigned i = 0; i < v.nrules; i++)
			v.score += v.rules[i].score;
		printf("%.6f %.3f %s %s\n", v.bayes.prob, v.score,
		       v.score >= tr->pol->spam_threshold ? "spam" : "ham", name);
		if (tr->verbose) {
			for (unsigned i = 0; i < v.bayes.ntop; i++)
				printf("  token %.4f %s\n", v.bayes.top[i].prob,
				       v.bayes.top[i].token);
			for (unsigned i = 0; i < v.nrules; i++)
				printf("  rule %.1f %s\n", v.rules[i].score, v.rules[i].name);
		}
		tr->read++;
	} else if (mf_trainset_add_tokens(tr->ts, &tr->key, toks, spam, &err) < 0) {
		fprintf(stderr, "mailfortctl: %s: %s (skipped)\n", name, err.msg);
		tr->failed++;
	} else {
		tr->read++;
		if (spam)
			tr->nspam++;
		else
			tr->nham++;
	}
	mf_verdict_free(&v);
	mf_tokens_free(&toks);
}

static int one_file(struct train *tr, const char *path, bool spam)
{
	char head[5] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	GMimeStream *stream;
	ssize_t n;

	if (fd < 0) {
		fprintf(stderr, "mailfortctl: %s: %s (skipped)\n", path, strerror(errno));
		tr->failed++;
		return 0;
	}
	n = read(fd, head, 5);
	lseek(fd, 0, SEEK_SET);
	stream = g_mime_stream_fs_new(fd);
	if (n == 5 && memcmp(head, "From ", 5) == 0) {
		/* mbox: one stream, split by GMime */
		GMimeParser *parser = g_mime_parser_new_with_stream(stream);
		uint64_t count = 0;

		g_mime_parser_set_format(parser, GMIME_FORMAT_MBOX);
		while (!g_mime_parser_eos(parser)) {
			GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
			GMimeStream *mem;
			char name[4200];

			if (msg == NULL)
				break;
			/* Walk the message's own bytes, as the milter would see them. */
			mem = g_mime_stream_mem_new();
			g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, mem);
			g_mime_stream_reset(mem);
			g_object_unref(msg);
			snprintf(name, sizeof(name), "%s#%llu", path, (unsigned long long)++count);
			one_message(tr, mem, name, spam);
			g_object_unref(mem);
		}
		g_object_unref(parser);
	} else {
		one_message(tr, stream, path, spam);
	}
	g_object_unref(stream);
	return 0;
}

static int one_path(struct train *tr, const char *path, bool spam, int depth);

static int one_dir(struct train *tr, const char *path, bool spam, int depth)
{
	struct dirent **names;
	int n, i;

	if (depth > 8)
		return 0;
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "mailfortctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		char sub[4096];
		const char *nm = names[i]->d_name;

		if (nm[0] == '.' || strcmp(nm, "tmp") == 0 || strcmp(nm, "cmds") == 0) {
			free(names[i]);
			continue; /* hidden files, Maildir tmp/, the corpus' cmds index */
		}
		snprintf(sub, sizeof(sub), "%s/%s", path, nm);
		free(names[i]);
		(void)one_path(tr, sub, spam, depth + 1);
	}
	free(names);
	return 0;
}

static int one_path(struct train *tr, const char *path, bool spam, int depth)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		fprintf(stderr, "mailfortctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(sb.st_mode))
		return one_dir(tr, path, spam, depth);
	if (S_ISREG(sb.st_mode))
		return one_file(tr, path, spam);
	return 0;
}

static struct mf_policy *load_policy(struct ctl *ctl)
{
	const struct mf_config *cfg = ctl_config(ctl);
	struct mf_policy *pol;
	struct mf_error err;

	if (cfg == NULL)
		return NULL;
	pol = mf_policy_new(cfg, &err);
	if (pol == NULL)
		ctl_fail("%s: %s", mf_config_path(cfg), err.msg);
	return pol;
}

static int load_key(struct ctl *ctl, struct mf_token_key *key)
{
	struct mf_error err;

	if (mf_token_key_load(mf_config_str(ctl_config(ctl), "keys", "dir"), key, &err) < 0)
		return ctl_fail("%s (run 'mailfortctl keys init' first)", err.msg);
	return 0;
}

static int spam_train(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"spam", required_argument, NULL, 's'},
	    {"ham", required_argument, NULL, 'H'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char **spam = calloc((size_t)argc + 1, sizeof(*spam));
	const char **ham = calloc((size_t)argc + 1, sizeof(*ham));
	size_t nspam = 0, nham = 0, i;
	bool dry = false;
	struct train tr = {0};
	struct mf_policy *pol = NULL;
	struct mf_model *model = NULL;
	struct mf_retention keep = {0};
	struct mf_error err;
	uint64_t s, h;
	int c, ret = 1;

	if (spam == NULL || ham == NULL) {
		free(spam);
		free(ham);
		return ctl_fail("out of memory");
	}
	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			spam[nspam++] = optarg;
			break;
		case 'H':
			ham[nham++] = optarg;
			break;
		case 'n':
			dry = true;
			break;
		case 'h':
			spam_help(stdout);
			ret = 0;
			goto out;
		default:
			ret = ctl_usage("spam train: bad option");
			goto out;
		}
	}
	if (nspam + nham == 0 || optind != argc + 1) {
		ret = ctl_usage("spam train needs --spam PATH and/or --ham PATH");
		goto out;
	}
	if ((pol = load_policy(ctl)) == NULL || load_key(ctl, &tr.key) < 0)
		goto out;
	tr.pol = pol;
	tr.ts = mf_trainset_new();
	if (tr.ts == NULL) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (i = 0; i < nspam; i++)
		if (one_path(&tr, spam[i], true, 0) < 0)
			goto out;
	for (i = 0; i < nham; i++)
		if (one_path(&tr, ham[i], false, 0) < 0)
			goto out;
	if (tr.nspam + tr.nham == 0) {
		ret = ctl_fail("no messages found");
		goto out;
	}
	if (!dry) {
		struct mf_db *db = ctl_db(ctl);

		if (db == NULL)
			goto out;
		keep.keep = mf_config_int(ctl_config(ctl), "milter", "keep_examples");
		model = mf_model_train_db(db, tr.ts, NULL, &keep, &tr.key, &err);
		if (model == NULL) {
			ret = ctl_fail("%s", err.msg);
			goto out;
		}
	}
	if (!ctl->quiet) {
		printf("%s %llu spam and %llu ham messages%s\n", dry ? "would train" : "trained",
		       (unsigned long long)tr.nspam, (unsigned long long)tr.nham,
		       tr.failed ? "; some messages were skipped" : "");
		if (model != NULL) {
			mf_model_messages(model, &s, &h);
			printf("model fitted to %llu spam and %llu ham examples (%zu distinct "
			       "tokens)\n",
			       (unsigned long long)s, (unsigned long long)h, mf_model_size(model));
			if (keep.pruned_spam + keep.pruned_ham > 0)
				printf("removed the oldest %llu spam and %llu ham examples beyond "
				       "keep_examples = %lld\n",
				       (unsigned long long)keep.pruned_spam,
				       (unsigned long long)keep.pruned_ham, (long long)keep.keep);
		}
	}
	ret = 0;
out:
	sodium_memzero(&tr.key, sizeof(tr.key));
	mf_trainset_free(&tr.ts);
	mf_model_unref(&model);
	mf_policy_unref(&pol);
	free(spam);
	free(ham);
	return ret;
}

static int spam_stats(struct ctl *ctl)
{
	const struct mf_config *cfg = ctl_config(ctl);
	struct mf_db *db;
	struct mf_error err;
	PGresult *res;

	if (cfg == NULL || (db = ctl_db(ctl)) == NULL)
		return 1;
	res = mf_db_exec(db,
	                 "SELECT t.spam_messages, t.ham_messages, t.updated_at,"
	                 " (SELECT count(*) FROM mailfort.spam_tokens),"
	                 " (SELECT count(*) FROM mailfort.spam_tokens WHERE ham_count = 0),"
	                 " (SELECT count(*) FROM mailfort.spam_tokens WHERE spam_count = 0),"
	                 " t.bias IS NOT NULL"
	                 " FROM mailfort.spam_totals t",
	                 0, NULL, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_fail(
		    "no spam statistics in the database (run 'mailfortctl db migrate')");
	}
	printf("spam messages trained:  %s\n"
	       "ham messages trained:   %s\n"
	       "distinct tokens:        %s (%s only in spam, %s only in ham)\n"
	       "last training:          %s\n",
	       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 3),
	       PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 2));
	if (strcmp(PQgetvalue(res, 0, 6), "t") == 0)
		printf("model:                  logistic regression over the kept examples\n");
	else if (strcmp(PQgetvalue(res, 0, 0), "0") != 0 || strcmp(PQgetvalue(res, 0, 1), "0") != 0)
		printf("model:                  token counts only (trained by an older version);\n"
		       "                        train again with 'mailfortctl spam train' to fit\n"
		       "                        the current classifier\n");
	PQclear(res);
	res = mf_db_exec(
	    db,
	    "SELECT count(*) FILTER (WHERE is_spam), count(*) FILTER (WHERE NOT is_spam),"
	    " coalesce(min(trained_at)::text, 'none')"
	    " FROM mailfort.spam_examples",
	    0, NULL, &err);
	if (res == NULL)
		return ctl_fail("%s", err.msg);
	printf("kept examples:          %s spam, %s ham (at most %lld of each: [milter] "
	       "keep_examples)\n"
	       "oldest kept example:    %s\n",
	       PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
	       (long long)mf_config_int(cfg, "milter", "keep_examples"), PQgetvalue(res, 0, 2));
	PQclear(res);
	res = mf_db_exec(db,
	                 "SELECT action, count(*) FROM mailfort.mail_verdicts"
	                 " WHERE verdict_time > now() - interval '1 day' GROUP BY action"
	                 " ORDER BY 2 DESC",
	                 0, NULL, &err);
	if (res != NULL) {
		int i;

		if (PQntuples(res) > 0)
			printf("verdicts in the last 24 hours:\n");
		for (i = 0; i < PQntuples(res); i++)
			printf("  %-10s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		PQclear(res);
	}
	return 0;
}

static int spam_classify(struct ctl *ctl, int argc, char **argv)
{
	struct train tr = {.classify = true};
	struct mf_policy *pol;
	struct mf_token_key key;
	struct mf_db *db;
	struct mf_error err;
	int i;

	if (argc > 0 && (strcmp(argv[0], "-v") == 0 || strcmp(argv[0], "--verbose") == 0)) {
		tr.verbose = true;
		argc--;
		argv++;
	}
	if (argc < 1)
		return ctl_usage("spam classify needs at least one PATH");
	if ((pol = load_policy(ctl)) == NULL)
		return 1;
	if (load_key(ctl, &key) < 0 || (db = ctl_db(ctl)) == NULL) {
		mf_policy_unref(&pol);
		return 1;
	}
	tr.model = mf_model_load(db, &key, &err);
	sodium_memzero(&key, sizeof(key));
	if (tr.model == NULL) {
		mf_policy_unref(&pol);
		return ctl_fail("%s", err.msg);
	}
	tr.pol = pol;
	for (i = 0; i < argc; i++)
		if (one_path(&tr, argv[i], false, 0) < 0)
			tr.failed++;
	mf_model_unref(&tr.model);
	mf_policy_unref(&pol);
	return tr.failed ? 1 : 0;
}

static int spam_forget(struct ctl *ctl, int argc, char **argv)
{
	struct train tr = {0};
	struct mf_policy *pol = NULL;
	struct mf_model *model = NULL;
	struct mf_db *db;
	struct mf_error err;
	uint64_t forgotten = 0, s, h;
	int i, ret = 1;

	if (argc < 1)
		return ctl_usage("spam forget needs at least one PATH");
	if ((pol = load_policy(ctl)) == NULL || load_key(ctl, &tr.key) < 0)
		goto out;
	tr.pol = pol;
	if ((tr.ts = mf_trainset_new()) == NULL) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (i = 0; i < argc; i++)
		if (one_path(&tr, argv[i], false, 0) < 0)
			goto out;
	if (tr.read == 0) {
		ret = ctl_fail("no messages found");
		goto out;
	}
	if ((db = ctl_db(ctl)) == NULL)
		goto out;
	model = mf_model_train_db(db, tr.ts, &forgotten, NULL, &tr.key, &err);
	if (model == NULL) {
		ret = ctl_fail("%s", err.msg);
		goto out;
	}
	if (!ctl->quiet) {
		mf_model_messages(model, &s, &h);
		printf("forgot %llu of %llu messages (the others were not trained)\n"
		       "model fitted to %llu spam and %llu ham examples (%zu distinct tokens)\n",
		       (unsigned long long)forgotten, (unsigned long long)tr.read,
		       (unsigned long long)s, (unsigned long long)h, mf_model_size(model));
	}
	ret = tr.failed ? 1 : 0;
out:
	sodium_memzero(&tr.key, sizeof(tr.key));
	mf_trainset_free(&tr.ts);
	mf_model_unref(&model);
	mf_policy_unref(&pol);
	return ret;
}

static int spam_prune(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"keep", required_argument, NULL, 'k'},
	    {"older-than", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct mf_retention keep = {.keep = -1};
	struct mf_token_key key;
	struct mf_model *model;
	const struct mf_config *cfg;
	struct mf_db *db;
	struct mf_error err;
	char *end;
	int c;

	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			errno = 0;
			keep.keep = optarg[0] >= '0' && optarg[0] <= '9'
			                ? (int64_t)strtoll(optarg, &end, 10)
			                : -1;
			if (keep.keep < 0 || errno != 0 || *end != '\0' || keep.keep > 100000000)
				return ctl_usage(
				    "spam prune: --keep '%s' is not a number of examples "
				    "(0 to 100000000)",
				    optarg);
			break;
		case 'o':
			if (ctl_age(optarg, &keep.max_age) < 0 || keep.max_age == 0)
				return ctl_usage("spam prune: --older-than '%s' is not an age (a "
				                 "number with s, m, h or d, e.g. 365d)",
				                 optarg);
			break;
		case 'h':
			spam_help(stdout);
			return 0;
		default:
			return ctl_usage("spam prune: bad option");
		}
	}
	if (optind != argc + 1)
		return ctl_usage("spam prune: unexpected argument '%s'", argv[optind - 1]);
	if ((cfg = ctl_config(ctl)) == NULL)
		return 1;
	if (keep.keep < 0)
		keep.keep = mf_config_int(cfg, "milter", "keep_examples");
	if (load_key(ctl, &key) < 0)
		return 1;
	if ((db = ctl_db(ctl)) == NULL) {
		sodium_memzero(&key, sizeof(key));
		return 1;
	}
	model = mf_model_train_db(db, NULL, NULL, &keep, &key, &err);
	sodium_memzero(&key, sizeof(key));
	if (model == NULL)
		return ctl_fail("%s", err.msg);
	if (!ctl->quiet)
		printf("removed %llu spam and %llu ham examples\n"
		       "kept %llu spam and %llu ham examples (at most %lld of each); model "
		       "fitted to them (%zu distinct tokens)\n",
		       (unsigned long long)keep.pruned_spam, (unsigned long long)keep.pruned_ham,
		       (unsigned long long)keep.kept_spam, (unsigned long long)keep.kept_ham,
		       (long long)keep.keep, mf_model_size(model));
	mf_model_unref(&model);
	return 0;
}

static int spam_tokens(struct ctl *ctl, int argc, char **argv)
{
	struct train tr = {.show_tokens = true};
	struct mf_policy *pol;
	int i;

	if (argc < 1)
		return ctl_usage("spam tokens needs at least one PATH");
	if ((pol = load_policy(ctl)) == NULL)
		return 1;
	tr.pol = pol;
	for (i = 0; i < argc; i++)
		if (one_path(&tr, argv[i], false, 0) < 0)
			tr.failed++;
	mf_policy_unref(&pol);
	return tr.failed ? 1 : 0;
}

int ctl_spam_cmd(struct ctl *ctl, int argc, char **argv)
{
	int ret;

	if (argc < 1) {
		spam_help(stderr);
		return 2;
	}
	if (ctl_is_help(argv[0])) {
		spam_help(stdout);
		return 0;
	}
	g_mime_init();
	if (strcmp(argv[0], "train") == 0)
		ret = spam_train(ctl, argc - 1, argv + 1);
	else if (strcmp(argv[0], "stats") == 0)
		ret = argc == 1 ? spam_stats(ctl) : ctl_usage("spam stats takes no arguments");
	else if (strcmp(argv[0], "classify") == 0)
		ret = spam_classify(ctl, argc - 1, argv + 1);
	else if (strcmp(argv[0], "forget") == 0)
		ret = spam_forget(ctl, argc - 1, argv + 1);
	else if (strcmp(argv[0], "prune") == 0)
		ret = spam_prune(ctl, argc - 1, argv + 1);
	else if (strcmp(argv[0], "tokens") == 0)
		ret = spam_tokens(ctl, argc - 1, argv + 1);
	else
		ret = ctl_usage("unknown spam command '%s'", argv[0]);
	g_mime_shutdown();
	return ret;
}
