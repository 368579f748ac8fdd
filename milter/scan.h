/*
 * scan.h - the message scanner behind mailfort-milter and "mailfortctl spam".
 *
 * Everything here works on one message at a time and holds no global state,
 * so any number of threads may scan different messages at once.  Shared,
 * read-only inputs (the policy from mailfort.conf, the token model) are
 * reference counted: a reload swaps in a new object while scans that
 * started with the old one finish with it.
 *
 *   msgbuf.c        a message held in memory, spilled to a temp file when large
 *   filetype.c      what a file is, from its first bytes (not its name)
 *   mime-shape.c    the MIME structure from the bytes, and what readers read differently
 *   archive-inspect.c every file inside archives and compressed files (libarchive)
 *   embedded.c      uuencode, yEnc and BinHex blocks inside text
 *   mime-walk.c     GMime parse and walk: text for the classifier, attachments
 *   attach-policy.c size limits, blocked names and contents, archives
 *   tokenize.c      words, header tokens and URL hosts, UTF-8, HTML to text
 *   classify.c      token model, logistic regression fit and classifier
 *   model-db.c      model and training examples in PostgreSQL
 *   rules.c         a small set of named rules that add to the score
 *   policy.c        the [milter] section turned into a struct mf_policy
 *   scan.c          one message through all of the above: a struct mf_verdict
 *   verdict.c       the verdict as X-Spam headers and as an audit event
 *
 * Functions return 0 / -1 with struct mf_error, or a pointer / NULL.
 */
#ifndef MF_SCAN_H
#define MF_SCAN_H

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "mf-common.h"

struct mf_config;
struct mf_db;
struct mf_event;

/* ------------------------------------------------------------ msgbuf.c */
struct mf_msgbuf;

/* A buffer that keeps up to spill bytes in memory and then moves everything
   to an unlinked temp file in tmp_dir. */
struct mf_msgbuf *mf_msgbuf_new(const char *tmp_dir, size_t spill);
void mf_msgbuf_free(struct mf_msgbuf **b);
int mf_msgbuf_append(struct mf_msgbuf *b, const void *data, size_t len,
                     struct mf_error *err) MF_WARN_UNUSED;
uint64_t mf_msgbuf_size(const struct mf_msgbuf *b);
bool mf_msgbuf_spilled(const struct mf_msgbuf *b);
/* A GMime stream over the whole content (new reference); NULL on error. */
GMimeStream *mf_msgbuf_stream(struct mf_msgbuf *b, struct mf_error *err);
/* The bytes, mapped or in memory, valid until the buffer is freed or
   appended to. NULL on error (empty buffer: a valid pointer, *len_r 0). */
const unsigned char *mf_msgbuf_data(struct mf_msgbuf *b, size_t *len_r, struct mf_error *err);

/* ------------------------------------------------------------ filetype.c */
enum mf_filetype {
	MF_FT_UNKNOWN = 0,
	MF_FT_WINDOWS_EXE, /* MZ (PE, DOS, DLL, SCR, ...) */
	MF_FT_ELF,
	MF_FT_MACHO,
	MF_FT_SCRIPT, /* "#!" */
	MF_FT_LNK,    /* Windows shell link */
	MF_FT_JAR,    /* ZIP with META-INF/MANIFEST.MF (set by zip inspection) */
	MF_FT_ZIP,
	MF_FT_RAR,
	MF_FT_7Z,
	MF_FT_GZIP,
	MF_FT_PDF,
	MF_FT_OLE, /* MS Office 97 compound document (also .msi) */
	MF_FT_PNG,
	MF_FT_JPEG,
	MF_FT_GIF,
	MF_FT_HTML,
	MF_FT_TAR,
	MF_FT_BZIP2,
	MF_FT_XZ,
	MF_FT_CAB, /* Microsoft cabinet */
	MF_FT_ISO, /* ISO 9660 disc image */
	MF_FT_COUNT,
};
enum mf_filetype mf_filetype_detect(const unsigned char *p, size_t len);
/* The name used in blocked_types and in verdicts ("windows-executable"). */
const char *mf_filetype_name(enum mf_filetype t);
/* MF_FT_COUNT when the name is unknown. */
enum mf_filetype mf_filetype_from_name(const char *name, size_t len);
bool mf_filetype_is_archive(enum mf_filetype t);

/* ------------------------------------------------------------ archive-inspect.c */
struct mf_inspect_limits {
	uint64_t max_total; /* bytes decoded per attachment, all levels */
	size_t max_entries; /* files per attachment, all levels */
	int max_depth;      /* archives inside archives */
	uint64_t max_ratio; /* decoded / compressed size of one archive */
};

/* One file found inside an archive, decoded in full. */
struct mf_archive_entry {
	const char *name; /* as stored (UTF-8 when the archive says so) */
	const char *path; /* "outer.zip/dir/inner.tar/x.exe", for reports */
	const unsigned char *data;
	size_t len;
	int depth;   /* 0: in the attachment itself */
	bool in_zip; /* stored in a ZIP archive (for JAR manifests) */
};

struct mf_archive_visitor {
	void (*entry)(void *ctx, const struct mf_archive_entry *e);
	/* Something that cannot be looked at: where (a path as above) and
	   why ("is encrypted"). */
	void (*uninspectable)(void *ctx, const char *where, const char *why);
};

/* Open data (attachment name) as an archive, in any format libarchive
   reads and wherever in data it sits, and visit every file in it,
   recursively.  0: not an archive (nothing visited); 1: an archive. */
int mf_archive_inspect(const unsigned char *data, size_t len, const char *name,
                       const struct mf_inspect_limits *lim, const struct mf_archive_visitor *vis,
                       void *ctx);

/* ------------------------------------------------------------ embedded.c */
/* A file carried inside text: uuencode ("begin 644 name"), yEnc
   ("=ybegin ... name=") or BinHex 4.0. */
struct mf_embedded {
	const char *encoding; /* "uuencode", "yenc", "binhex" */
	const char *name;     /* as written, NUL-terminated */
	const unsigned char *data;
	size_t len;
	bool damaged; /* the block could not be decoded to its end */
};

/* Find and decode every such block in text/len, at most max_blocks and
   max_total decoded bytes; call found for each.  Returns the count. */
size_t mf_embedded_scan(const unsigned char *text, size_t len, size_t max_blocks,
                        uint64_t max_total, void (*found)(void *ctx, const struct mf_embedded *e),
                        void *ctx);

/* ------------------------------------------------------------ policy.c */
enum mf_action {
	MF_ACT_ACCEPT = 0,
	MF_ACT_STRIP, /* attachment only */
	MF_ACT_HOLD,
	MF_ACT_REJECT,
	MF_ACT_TEMPFAIL,
};
const char *mf_action_name(enum mf_action a);

struct mf_policy {
	int refcount; /* atomic */
	/* daemon */
	char *socket, *socket_group, *user, *pid_file, *tmp_dir;
	unsigned socket_mode;
	int timeout;
	enum mf_action default_action;
	uint64_t spill_threshold, max_message_size;
	/* spam */
	bool spam, add_headers;
	double spam_threshold, hold_threshold, reject_threshold; /* < 0: off */
	double bayes_weight;
	int min_training;
	int model_refresh;
	char **disabled_rules; /* NULL-terminated */
	char *trusted_authserv_id;
	/* attachments */
	uint64_t max_attachment_size, max_total_attachment_size;
	enum mf_action size_action, blocked_action;
	/* for what cannot be inspected: mail from outside, and mail from an
	   authenticated sender (submission) */
	enum mf_action uninspectable_action, uninspectable_submission_action;
	char **blocked_extensions; /* lower case, NULL-terminated */
	bool blocked_types[MF_FT_COUNT];
	bool scan_archives;
	size_t max_archive_entries;
	uint64_t max_archive_ratio, max_archive_size;
	int max_archive_depth;
	/* limits */
	int max_mime_depth, max_mime_parts;
	uint64_t max_header_size, max_scan_text;
	enum mf_action limits_action;
	enum mf_action ambiguous_action; /* MIME that readers read differently */
	/* charset converters kept open between messages (mime-walk.c) */
	struct mf_iconv_pool *iconv_pool;
};

/* Build a policy from the [milter] section; -1 names the bad key. */
struct mf_policy *mf_policy_new(const struct mf_config *cfg, struct mf_error *err) MF_WARN_UNUSED;
struct mf_policy *mf_policy_ref(struct mf_policy *p);
void mf_policy_unref(struct mf_policy **p);
bool mf_policy_rule_enabled(const struct mf_policy *p, const char *rule);

/* ------------------------------------------------------------ tokenize.c */
#define MF_TOKEN_MAX 48

struct mf_tokens;

/* A set of distinct tokens (at most max). */
struct mf_tokens *mf_tokens_new(size_t max);
void mf_tokens_free(struct mf_tokens **t);
size_t mf_tokens_count(const struct mf_tokens *t);
const char *mf_tokens_get(const struct mf_tokens *t, size_t i, uint64_t *hash_r);
/* Token i (NULL past the end) and its length in bytes. */
const char *mf_tokens_text(const struct mf_tokens *t, size_t i, size_t *len_r);
/* Add one token as is (prefix may be NULL). */
void mf_tokens_add(struct mf_tokens *t, const char *prefix, const char *word, size_t len);
/* Split UTF-8 text into words (lower-cased, CJK as character pairs), and
   URLs into their host names ("url:example.com", "url:com"). */
void mf_tokenize_text(struct mf_tokens *t, const char *prefix, const char *text, size_t len);
/* Reduce HTML to text (tags, comments, scripts dropped; entities decoded)
   and tokenize it, plus the hosts of href/src URLs. */
void mf_tokenize_html(struct mf_tokens *t, const char *html, size_t len);
/* The 64-bit hash under which a token set stores a token (seed: the
   set's secret, so that its slots cannot be predicted). */
uint64_t mf_token_hash(uint64_t seed, const char *tok, size_t len);

/* ------------------------------------------------------------ classify.c */
/* Tokens are stored under a keyed hash (SipHash-2-4, 64 bits) so that the
   words of official mail cannot be read back from the database.  The key is
   derived from the server's spam.key, which only the milter's user (and
   mailfortctl, as root) reads. */
struct mf_token_key {
	unsigned char k[32];
};

/* Load <keys_dir>/spam.key and derive the token key from it. */
int mf_token_key_load(const char *keys_dir, struct mf_token_key *key,
                      struct mf_error *err) MF_WARN_UNUSED;
/* The stored identity of a token (never 0). */
uint64_t mf_token_id(const struct mf_token_key *key, const char *tok, size_t len);

struct mf_token_count {
	uint64_t hash;
	uint32_t spam, ham; /* messages trained that contained the token */
	float weight;       /* logistic regression weight; 0 in a counts-only model */
};

struct mf_model;

struct mf_model *mf_model_new(const struct mf_token_key *key, size_t hint);
struct mf_model *mf_model_ref(struct mf_model *m);
void mf_model_unref(struct mf_model **m);
const struct mf_token_key *mf_model_key(const struct mf_model *m);
/* Add counts for a token id (building the model; not thread-safe). */
int mf_model_add(struct mf_model *m, uint64_t id, uint32_t spam, uint32_t ham);
/* Count one message's tokens as spam or ham (training). */
int mf_model_train(struct mf_model *m, const struct mf_tokens *t, bool spam);
void mf_model_set_messages(struct mf_model *m, uint64_t nspam, uint64_t nham);
void mf_model_messages(const struct mf_model *m, uint64_t *nspam, uint64_t *nham);
size_t mf_model_size(const struct mf_model *m);
const struct mf_token_count *mf_model_get(const struct mf_model *m, uint64_t id);
/* Iterate over every token: *iter starts at 0; false at the end. */
bool mf_model_next(const struct mf_model *m, size_t *iter, struct mf_token_count *out);
/* A token's weight; the first mf_model_set_bias makes the model classify by
   its weights (logistic regression) instead of by its counts. */
int mf_model_set_weight(struct mf_model *m, uint64_t id, float weight);
void mf_model_set_bias(struct mf_model *m, double bias);
/* true (and the bias) when the model has weights. */
bool mf_model_weighted(const struct mf_model *m, double *bias_r);

/* Training examples: each message as the sorted, distinct ids of its tokens
   and its label.  mf_model_fit learns a new model from all of them. */
struct mf_trainset;

struct mf_trainset *mf_trainset_new(void);
void mf_trainset_free(struct mf_trainset **ts);
/* Add an example from token ids in any order (duplicates are dropped). */
int mf_trainset_add(struct mf_trainset *ts, const uint64_t *ids, size_t n, bool spam,
                    struct mf_error *err) MF_WARN_UNUSED;
/* Add an example from a message's tokens, under the model key. */
int mf_trainset_add_tokens(struct mf_trainset *ts, const struct mf_token_key *key,
                           const struct mf_tokens *t, bool spam,
                           struct mf_error *err) MF_WARN_UNUSED;
size_t mf_trainset_count(const struct mf_trainset *ts);
/* Example i: its ids (sorted, distinct), their number and its label. */
const uint64_t *mf_trainset_get(const struct mf_trainset *ts, size_t i, size_t *n_r, bool *spam_r);
/* The identity of an example: BLAKE2b-256 of its sorted ids. */
void mf_trainset_digest(const uint64_t *ids, size_t n, unsigned char out[32]);
/* Fit a new model to every example: per-token counts, and the weights and
   bias of a logistic regression (deterministic: the same examples give the
   same model).  NULL with err set when out of memory or ts is empty. */
struct mf_model *mf_model_fit(const struct mf_trainset *ts, const struct mf_token_key *key,
                              struct mf_error *err) MF_WARN_UNUSED;

#define MF_BAYES_TOP 10

struct mf_bayes {
	bool trained;  /* false: model too small, prob is 0.5 */
	double prob;   /* 0 = ham ... 1 = spam */
	unsigned used; /* tokens that took part */
	unsigned ntop;
	struct {
		char token[MF_TOKEN_MAX + 24];
		double prob;
	} top[MF_BAYES_TOP]; /* strongest tokens, by distance from 0.5 */
};

struct mf_bayes_params {
	double robs, robx, min_dev;
	unsigned max_tokens; /* strongest tokens used (0: all) */
	uint64_t min_training;
};
void mf_bayes_defaults(struct mf_bayes_params *p);
void mf_classify(const struct mf_model *m, const struct mf_tokens *t,
                 const struct mf_bayes_params *p, struct mf_bayes *out);

/* ------------------------------------------------------------ model-db.c */
/* Load the stored model (counts, and weights when fitted) from PostgreSQL. */
struct mf_model *mf_model_load(struct mf_db *db, const struct mf_token_key *key,
                               struct mf_error *err) MF_WARN_UNUSED;
/* Which kept examples a training run drops once its own are stored: per
   class, all but the keep newest (by trained_at, then digest), and those
   trained more than max_age seconds ago.  The run fills in how many it
   dropped and how many it kept, per class. */
struct mf_retention {
	int64_t keep;                     /* examples kept per class; < 0: no limit */
	int64_t max_age;                  /* seconds; 0: no limit */
	uint64_t pruned_spam, pruned_ham; /* out */
	uint64_t kept_spam, kept_ham;     /* out */
};
/* One training run, in one transaction: add (or relabel) the examples of
   ts -- or, when forgotten_r is not NULL, delete them and count how many
   were kept --, drop what keep (may be NULL) says, then fit a model to
   every stored example and store it in place of the old one.  ts may be
   NULL or empty (pruning alone).  Returns the new model (empty when no
   example is left), or NULL with err set (nothing changed). */
struct mf_model *mf_model_train_db(struct mf_db *db, const struct mf_trainset *ts,
                                   uint64_t *forgotten_r, struct mf_retention *keep,
                                   const struct mf_token_key *key,
                                   struct mf_error *err) MF_WARN_UNUSED;

/* ------------------------------------------------------------ mime-shape.c */
/* One part as the structure reader sees it, in document order. */
struct mf_mime_node {
	char kind;      /* 'm' multipart, 'r' embedded message, 'l' leaf */
	int depth;      /* 1: the message's own body */
	char type[48];  /* "text/plain", lower case */
	char *filename; /* a leaf's file name (UTF-8, g_free), or NULL */
};

struct mf_mime_shape {
	struct mf_mime_node *nodes; /* when asked for */
	size_t n, cap;
	char *doubt; /* what two MIME readers read differently (g_free), or NULL */
};

/* Read the structure of a whole message (header and body); nodes only
   when want_nodes.  Parts deeper than max_depth are not read.  -1 only
   when out of memory. */
int mf_mime_shape_read(const unsigned char *data, size_t len, int max_depth, bool want_nodes,
                       struct mf_mime_shape *out) MF_WARN_UNUSED;
void mf_mime_shape_free(struct mf_mime_shape *s);

/* ------------------------------------------------------------ mime-walk.c / scan.c */
struct mf_attachment {
	char *filename;     /* UTF-8, or NULL */
	char *content_type; /* "application/pdf" */
	uint64_t size;      /* decoded */
	enum mf_filetype type;
	enum mf_action action;
	char *reason;        /* why not accepted (for replies and verdicts) */
	char *inner;         /* the offending entry inside an archive, or NULL */
	bool executable;     /* blocked by name or content, wherever it was */
	bool encrypted;      /* an encrypted archive */
	char *uninspectable; /* why part of it could not be inspected, or NULL;
	                        scan.c applies the direction's action */
	GMimeObject *part;   /* for stripping (reference held) */
	GMimeObject *parent;
};

struct mf_rule_hit {
	const char *name;
	double score;
	char detail[96];
};

#define MF_MAX_RULE_HITS 24

/* What the rules read from the top-level header (names compared without
   case; values decoded and unfolded).  Where a header appears more than
   once, the Date rule reads the last one, as GMime does. */
struct mf_head {
	bool parsed; /* the message could be read at all */
	bool has_date, has_message_id, has_from, has_subject;
	char *date;          /* the first Date header, for the rule's detail */
	bool date_valid;     /* the last Date header could be read ... */
	int64_t date_when;   /* ... as this time (Unix seconds) */
	char **auth_results; /* every Authentication-Results value, top down */
	size_t nauth_results;
};

struct mf_verdict {
	bool submission;       /* in: from an authenticated sender (outbound) */
	enum mf_action action; /* final action for the message */
	char reply_code[4];    /* for REJECT / TEMPFAIL */
	char reply_xcode[8];
	char *reply_text;
	char *hold_reason;
	char *reason; /* one-line summary for logs and the event */
	bool scanned_spam;
	double score;
	bool is_spam;
	struct mf_bayes bayes;
	struct mf_rule_hit rules[MF_MAX_RULE_HITS];
	unsigned nrules;
	struct mf_attachment *attachments;
	size_t nattachments;
	bool body_changed;     /* an attachment was stripped */
	bool top_replaced;     /* ... and it was the whole body: new Content-Type */
	GMimeObject *top;      /* the message body: its top MIME part (for rules, strip) */
	GMimeMessage *message; /* the whole parsed message, when GMime read the header */
	struct mf_head head;
	char *message_id;
	char *subject;
	uint64_t size;
	unsigned parts;
	bool limit_exceeded;
	char *ambiguous;     /* what two MIME readers read differently (g_free), or NULL */
	char *uninspectable; /* accepted although this could not be inspected */
};

void mf_verdict_init(struct mf_verdict *v);
void mf_verdict_free(struct mf_verdict *v);

/* Parse the message in the stream and fill toks with the
   classifier's tokens; v gets the attachments, structure counters and
   message-id.  Returns -1 on internal errors only: a hostile message is a
   verdict (limit_exceeded), not an error. */
int mf_mime_walk(const struct mf_policy *pol, GMimeStream *stream, struct mf_tokens *toks,
                 struct mf_verdict *v, struct mf_error *err) MF_WARN_UNUSED;
/* Converters to UTF-8 kept open for reuse, one message part at a time
   each: opening a converter loads its iconv module and closing the last
   one unloads it again, for every part.  Thread-safe; NULL (no pool) is
   allowed everywhere. */
struct mf_iconv_pool *mf_iconv_pool_new(void);
void mf_iconv_pool_free(struct mf_iconv_pool **pool);
/* Most tokens taken from one message. */
#define MF_MAX_TOKENS 20000

/* Decide what to do with each attachment (attach-policy.c). */
void mf_attach_policy(const struct mf_policy *pol, GMimeObject *part, const unsigned char *data,
                      size_t len, struct mf_attachment *a);

/* The uuencode, yEnc and BinHex blocks in a text part's decoded content
   (attach-policy.c), each appended to v as an attachment of its own and
   judged like one; stripping one strips the text part.  -1: out of memory. */
int mf_embedded_attachments(const struct mf_policy *pol, GMimeObject *part, GMimeObject *parent,
                            const unsigned char *data, size_t len, struct mf_verdict *v);

/* Rules (rules.c): append hits to v->rules, from v->head, v->top and the
   attachments. */
void mf_rules_run(const struct mf_policy *pol, struct mf_verdict *v);

/* The whole scan: structure, attachments, spam. model may be NULL. */
int mf_scan(const struct mf_policy *pol, const struct mf_model *model, GMimeStream *stream,
            struct mf_verdict *v, struct mf_error *err) MF_WARN_UNUSED;
/* Replace every stripped attachment by a text part; write the new body
   (the message without its top-level header) to out. */
int mf_scan_write_body(struct mf_verdict *v, GMimeStream *out, struct mf_error *err) MF_WARN_UNUSED;

/* ------------------------------------------------------------ verdict.c */
/* "score=7.3 required=5.0" style header values (malloc'd). */
char *mf_verdict_spam_status(const struct mf_policy *pol, const struct mf_verdict *v);
/* Add the verdict's fields to an event of type "verdict". */
void mf_verdict_event(const struct mf_verdict *v, struct mf_event *ev);

#endif
