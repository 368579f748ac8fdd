/*
 * prepare.c - read the spool and build the next COPY batch while the
 * current one is being stored.
 *
 * A preparing thread reads records from the spool reader, checks each one
 * (UTF-8, strict JSON as jsonb reads it, a "type"), derives the indexed
 * columns, extends the hash chain and encodes the rows in PostgreSQL's
 * binary COPY format.  The shipping thread (ship.c) takes one finished
 * batch at a time; as soon as it takes a batch that held events, the next
 * one is started, so that the spool is read and hashed while PostgreSQL
 * stores the previous batch.
 *
 * Nothing here is committed state.  A batch carries the seq, chain head and
 * spool position it ends at; the shipping thread adopts them only after the
 * batch's transaction has committed.  After any failure the thread is
 * stopped, the prepared batch is thrown away, and preparation starts again
 * from the committed position, seq and head (auditd_reset, auditd_connect):
 * the same records give the same rows, so nothing is skipped or repeated.
 *
 * A record whose type, user or session is longer than auditd stores
 * (AUDITD_MAX_*), or the one record the database refused on its own
 * (quarantine_seq, found by shipping one event per batch up to
 * careful_until, see ship.c), is quarantined: a "quarantined" event takes
 * its seq in the chain, and the record, unchanged, rides on the batch to
 * mailfort.audit_quarantine.
 *
 * The preparing thread owns the spool reader while it runs and never
 * touches the database, the configuration or the spool's files (sealing
 * and removal are done by the shipping thread).  Out of memory aborts, as
 * everywhere in auditd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <sodium.h>

#include "auditd.h"
#include "mf-event.h"
#include "mf-json.h"
#include "mf-log.h"

struct auditd_prep {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	bool want;                  /* the shipping thread asks for a batch */
	bool ahead;                 /* ... to be read ahead */
	bool busy;                  /* a batch is being prepared */
	bool stop;                  /* the thread must end (prepare() also reads it unlocked) */
	struct auditd_batch *ready; /* finished, not yet taken */
	struct auditd_batch *spare; /* a shipped batch whose buffer can be reused */

	/* the preparing thread's own (only it reads or writes them while it runs) */
	struct mf_spool_reader *reader;
	const char *node;
	size_t node_len;
	const struct auditd_producers *producers;
	int64_t batch_size;
	int64_t seq;                             /* seq of the last prepared event */
	unsigned char head[MF_AUDIT_HASH_BYTES]; /* its hash */
	int64_t careful_until;                   /* one event per batch up to here */
	int64_t quarantine_seq;                  /* quarantine this one (0: none) */
	char quarantine_reason[MF_ERROR_MAX];
	char quarantine_state[6];
};

/* ------------------------------------------------------------ buffer */

static void batch_reserve(struct auditd_batch *b, size_t more)
{
	size_t cap;

	if (b->len + more <= b->cap)
		return;
	cap = b->cap == 0 ? 1024 * 1024 : b->cap;
	while (cap < b->len + more)
		cap *= 2;
	b->data = realloc(b->data, cap);
	if (b->data == NULL) {
		mf_log_error("out of memory (%zu bytes)", cap);
		abort();
	}
	b->cap = cap;
}

/* The caller has reserved the room. */
static void put_u16(struct auditd_batch *b, uint16_t v)
{
	unsigned char *p = (unsigned char *)b->data + b->len;

	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	b->len += 2;
}

static void put_u32(struct auditd_batch *b, uint32_t v)
{
	unsigned char *p = (unsigned char *)b->data + b->len;

	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	b->len += 4;
}

static void put_u64(struct auditd_batch *b, uint64_t v)
{
	put_u32(b, (uint32_t)(v >> 32));
	put_u32(b, (uint32_t)v);
}

/* A binary COPY field: its length and bytes, or -1 for NULL. */
static void put_field(struct auditd_batch *b, const void *data, size_t len)
{
	if (data == NULL) {
		batch_reserve(b, 4);
		put_u32(b, UINT32_MAX);
		return;
	}
	batch_reserve(b, 4 + len);
	put_u32(b, (uint32_t)len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void put_str(struct auditd_batch *b, const char *s)
{
	put_field(b, s, s == NULL ? 0 : strlen(s));
}

static void put_int8(struct auditd_batch *b, int64_t v)
{
	batch_reserve(b, 12);
	put_u32(b, 8);
	put_u64(b, (uint64_t)v);
}

/* timestamptz: microseconds since 2000-01-01 00:00:00 UTC. */
#define PG_EPOCH_US INT64_C(946684800000000)

/* inet: family (PostgreSQL's: AF_INET + 0 or + 1), prefix bits, is_cidr,
   address length, address.  ip is in canonical form (mf_audit_canon_ip). */
static void put_inet(struct auditd_batch *b, const char *ip)
{
	unsigned char addr[16];
	unsigned char hdr[4] = {0, 0, 0, 0};
	size_t alen;

	if (ip != NULL && inet_pton(AF_INET, ip, addr) == 1) {
		hdr[0] = AF_INET;
		hdr[1] = 32;
		alen = 4;
	} else if (ip != NULL && inet_pton(AF_INET6, ip, addr) == 1) {
		hdr[0] = AF_INET + 1;
		hdr[1] = 128;
		alen = 16;
	} else {
		put_field(b, NULL, 0);
		return;
	}
	hdr[3] = (unsigned char)alen;
	batch_reserve(b, 8 + alen);
	put_u32(b, (uint32_t)(4 + alen));
	memcpy(b->data + b->len, hdr, 4);
	memcpy(b->data + b->len + 4, addr, alen);
	b->len += 4 + alen;
}

/* ------------------------------------------------------------ checks */

/*
 * Each record is checked with mf_json_scan (mf-json.h): exactly what the
 * producers check before they write an event, and what jsonb stores.
 * audit_events.payload has a CHECK (payload::jsonb IS NOT NULL), and
 * json-c, which derives the columns, also accepts single quotes, comments,
 * trailing commas, NaN, Infinity, leading zeros and lone surrogate escapes.
 * A record jsonb refuses would make PostgreSQL refuse the whole batch, again
 * on every retry, and stop the trail.  Such a record is stored as type
 * "invalid" instead.
 */

/* The fields of the top-level object that columns are derived from. */
enum { F_TYPE, F_USER, F_SESSION, F_IP, F_TIME, F_COUNT };
static const char *const field_names[F_COUNT] = {"type", "user", "session", "ip", "time"};
static const size_t field_lens[F_COUNT] = {4, 4, 7, 2, 4};

/*
 * While it checks a record, the scanner also reports the top-level
 * members, so that the columns need no second parse.  They are taken only
 * from records that json-c (mf_audit_derive, which "mailfortctl audit
 * verify" uses to check the columns again) certainly reads the same way: a
 * top-level object ending at the last byte, nesting at most
 * FAST_MAX_DEPTH deep, numbers without an exponent and with at most 15
 * digits on either side of the point, no key with an escape, and each of
 * the fields above at most once, as a string without escapes.  Any other
 * record ("simple" false) takes mf_audit_derive.
 */
#define FAST_MAX_DEPTH  16
#define FAST_MAX_DIGITS 15

struct jscan {
	struct mf_json_scan scan;
	bool simple;
	const char *val[F_COUNT]; /* a field's string value, quotes excluded */
	size_t vlen[F_COUNT];
	const char *peer; /* the receiver's "peer" member (JSON text), or NULL */
	size_t peer_len;
	int npeer; /* how many "peer" members: more than one is refused */
};

/* A member of the top-level object: note it if it is one of the fields. */
static void note_field(void *context, const struct mf_json_member *m)
{
	struct jscan *j = context;

	if (m->key_escaped) {
		j->simple = false; /* the name might be one of them, escaped */
		return;
	}
	if (m->key_len == 4 && memcmp(m->key, "peer", 4) == 0) {
		j->peer = m->value;
		j->peer_len = m->value_len;
		j->npeer++;
		return;
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (field_lens[f] != m->key_len || memcmp(field_names[f], m->key, m->key_len) != 0)
			continue;
		if (j->val[f] != NULL || m->value[0] != '"' || m->value_escaped) {
			j->simple = false; /* repeated, not a string, or escaped */
			return;
		}
		j->val[f] = m->value + 1;
		j->vlen[f] = m->value_len - 2;
		return;
	}
}

/* Check s as jsonb would (mf-json.h); j tells what was found. */
static bool json_strict_scan(const char *s, size_t len, struct jscan *j)
{
	const char *p = s;

	memset(j, 0, sizeof(*j));
	j->scan.max_depth = MF_JSON_MAX_DEPTH;
	j->scan.member = note_field;
	j->scan.context = j;
	j->simple = true;
	while (p < s + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= s + len || *p != '{' || s[len - 1] != '}')
		j->simple = false; /* json-c wants an object and no trailing space */
	if (mf_json_scan(s, len, &j->scan) < 0)
		return false;
	if (j->scan.depth_seen > FAST_MAX_DEPTH || j->scan.digits_seen > FAST_MAX_DIGITS ||
	    j->scan.exponent_seen)
		j->simple = false;
	return true;
}

static char *field_dup(const struct jscan *j, int f)
{
	char *s;

	if (j->val[f] == NULL)
		return NULL;
	s = strndup((const char *)j->val[f], j->vlen[f]);
	if (s == NULL) {
		mf_log_error("out of memory");
		abort();
	}
	return s;
}

/* mf_audit_derive's columns from what the scan noted; -1 when the record is
   not simple enough (or has no type): then mf_audit_derive decides. */
static int fast_derive(const struct jscan *j, struct mf_audit_cols *cols)
{
	char *ip, *t, canon[64];

	memset(cols, 0, sizeof(*cols));
	if (!j->simple || j->val[F_TYPE] == NULL || j->vlen[F_TYPE] == 0)
		return -1;
	cols->type = field_dup(j, F_TYPE);
	cols->username = field_dup(j, F_USER);
	cols->session = field_dup(j, F_SESSION);
	ip = field_dup(j, F_IP);
	if (ip != NULL && mf_audit_canon_ip(ip, canon, sizeof(canon)) == 0 &&
	    (cols->ip = strdup(canon)) == NULL)
		abort();
	free(ip);
	t = field_dup(j, F_TIME);
	cols->time_ok = t != NULL && mf_audit_parse_time(t, &cols->time_us) == 0;
	free(t);
	return 0;
}

unsigned int auditd_type_bit(const char *type)
{
	if (strcmp(type, "auth") == 0 || strcmp(type, "login") == 0)
		return AUDITD_T_AUTH;
	if (strcmp(type, "read") == 0)
		return AUDITD_T_READ;
	if (strcmp(type, "expunge") == 0)
		return AUDITD_T_EXPUNGE;
	if (strcmp(type, "verdict") == 0)
		return AUDITD_T_VERDICT;
	if (strcmp(type, "crypt") == 0)
		return AUDITD_T_CRYPT;
	if (strcmp(type, "refused") == 0)
		return AUDITD_T_REFUSED;
	return 0;
}

/* Wrap a record that is not a valid event ("invalid"), or one refused by
   [audit] producers ("refused", with the sender's identity peer), so that
   it is stored, not lost.  Its text is kept as a string, invalid UTF-8 as
   U+FFFD (json_escape), and so are NUL bytes: their \u0000 escape would
   make jsonb refuse the wrapper, and with it every batch that holds it. */
static char *wrap_record(const char *type, const char *node, const char *payload, size_t len,
                         const char *why, const char *peer, size_t peer_len)
{
	struct mf_event *ev = mf_event_new(type, node);
	const char *json;
	char *raw, *out;
	size_t jlen, rlen = 0;

	mf_event_add_str(ev, "reason", why);
	if (memchr(payload, '\0', len) != NULL) {
		if (len > SIZE_MAX / 3 || (raw = malloc(len * 3)) == NULL) {
			mf_log_error("out of memory wrapping an invalid record");
			abort();
		}
		for (size_t i = 0; i < len; i++) {
			if (payload[i] != '\0') {
				raw[rlen++] = payload[i];
			} else {
				memcpy(raw + rlen, "\xef\xbf\xbd", 3);
				rlen += 3;
			}
		}
		mf_event_add_strn(ev, "raw", raw, rlen);
		free(raw);
	} else {
		mf_event_add_strn(ev, "raw", payload, len);
	}
	if (peer != NULL) {
		char *pj = strndup(peer, peer_len);

		if (pj == NULL)
			abort();
		mf_event_add_json(ev, "peer", pj);
		free(pj);
	}
	json = mf_event_json(ev, &jlen);
	out = json != NULL ? strndup(json, jlen) : NULL;
	mf_event_free(&ev);
	if (out == NULL) {
		mf_log_error("out of memory wrapping an invalid record");
		abort();
	}
	return out;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Why a record's columns are too long to store, or NULL. */
static const char *too_long(const struct mf_audit_cols *cols, char *buf, size_t size)
{
	static const struct {
		const char *name;
		size_t off, max;
	} fields[] = {
	    {"type", offsetof(struct mf_audit_cols, type), AUDITD_MAX_TYPE},
	    {"user", offsetof(struct mf_audit_cols, username), AUDITD_MAX_USER},
	    {"session", offsetof(struct mf_audit_cols, session), AUDITD_MAX_SESSION},
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = *(char *const *)((const char *)cols + fields[i].off);
		size_t len = v != NULL ? strlen(v) : 0;

		if (len > fields[i].max) {
			snprintf(buf, size,
			         "field \"%s\" is %zu bytes (mailfort-auditd stores at most %zu)",
			         fields[i].name, len, fields[i].max);
			return buf;
		}
	}
	return NULL;
}

/* The "quarantined" event that stands in the chain for a refused record,
   and the record itself queued on the batch for mailfort.audit_quarantine. */
static char *quarantine(struct auditd_prep *p, struct auditd_batch *b, int64_t seq,
                        const char *record, size_t len, const struct mf_audit_cols *cols,
                        const char *why, const char *sqlstate)
{
	struct auditd_quarantine *q = calloc(1, sizeof(*q));
	struct mf_event *ev = mf_event_new("quarantined", p->node);
	char hex[MF_AUDIT_HASH_BYTES * 2 + 1];
	const char *json;
	char *out;
	size_t jlen;

	if (q == NULL || (q->record = malloc(len + 1)) == NULL ||
	    (q->reason = strdup(why)) == NULL) {
		mf_log_error("out of memory quarantining a record");
		abort();
	}
	q->seq = seq;
	memcpy(q->record, record, len);
	q->record[len] = '\0';
	q->len = len;
	snprintf(q->sqlstate, sizeof(q->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
	crypto_generichash(q->digest, sizeof(q->digest), (const unsigned char *)record, len, NULL,
	                   0);
	sodium_bin2hex(hex, sizeof(hex), q->digest, sizeof(q->digest));
	q->next = b->quarantine;
	b->quarantine = q;

	/* the event's own fields are cut to size by mf_event (mf-event.h) */
	mf_event_add_str(ev, "reason", why);
	if (sqlstate != NULL && *sqlstate != '\0')
		mf_event_add_str(ev, "sqlstate", sqlstate);
	mf_event_add_int(ev, "length", (int64_t)len);
	mf_event_add_str(ev, "digest", hex);
	if (cols != NULL && cols->type != NULL)
		mf_event_add_str(ev, "original_type", cols->type);
	if (cols != NULL && cols->username != NULL)
		mf_event_add_str(ev, "user", cols->username);
	json = mf_event_json(ev, &jlen);
	out = json != NULL ? strndup(json, jlen) : NULL;
	mf_event_free(&ev);
	if (out == NULL) {
		mf_log_error("out of memory quarantining a record");
		abort();
	}
	mf_log_error("node %s seq %" PRId64 ": record of %zu bytes quarantined: %s", p->node, seq,
	             len, why);
	return out;
}

/* Add one record to the batch as the event after p->seq, advancing the chain. */
static void add_record(struct auditd_prep *p, struct auditd_batch *b, const char *payload,
                       size_t len)
{
	struct mf_audit_cols cols;
	struct mf_error err;
	struct jscan scan;
	unsigned char hash[MF_AUDIT_HASH_BYTES];
	char *wrapped = NULL, refusal[256];
	const char *why = NULL, *wrap_type = "invalid";
	const char *record = payload; /* as spooled, for a quarantine */
	size_t record_len = len;
	int64_t seq = p->seq + 1;

	/* the reasons, and their order, are those of the checks one by one:
	   UTF-8, NUL, json-c's reading (mf_audit_derive), jsonb's grammar;
	   the scan answers for the whole text, it checks UTF-8 in strings */
	if (!json_strict_scan(payload, len, &scan)) {
		if (!mf_utf8_valid(payload, len) || memchr(payload, '\0', len) != NULL) {
			why = "record is not valid UTF-8";
		} else if (scan.scan.error == MF_JSON_ERR_NUL) {
			/* a \u0000 escape (not an escaped backslash before "u0000") */
			why = "record contains a NUL character";
		} else if (mf_audit_derive(payload, len, &cols, &err) < 0) {
			why = err.msg;
		} else {
			mf_audit_cols_free(&cols);
			why = "event is not strict JSON (jsonb would refuse it)";
		}
	} else if (fast_derive(&scan, &cols) < 0) {
		mf_audit_cols_free(&cols);
		if (mf_audit_derive(payload, len, &cols, &err) < 0)
			why = err.msg;
	}
	if (why == NULL && scan.npeer > 1) {
		mf_audit_cols_free(&cols);
		why = "the event carries more than one \"peer\"";
		wrap_type = "refused";
	} else if (why == NULL &&
	           (why = auditd_producers_check(p->producers, cols.type, scan.peer, scan.peer_len,
	                                         cols.time_ok, cols.time_us, refusal,
	                                         sizeof(refusal))) != NULL) {
		mf_audit_cols_free(&cols);
		wrap_type = "refused";
	}
	if (why != NULL) {
		mf_log_warn("node %s seq %" PRId64 ": %s; stored as type \"%s\"", p->node, seq, why,
		            wrap_type);
		wrapped = wrap_record(wrap_type, p->node, payload, len, why,
		                      strcmp(wrap_type, "refused") == 0 ? scan.peer : NULL,
		                      scan.peer_len);
		payload = wrapped;
		len = strlen(wrapped);
		if (mf_audit_derive(payload, len, &cols, &err) < 0) {
			mf_log_error("cannot wrap an invalid record: %s", err.msg);
			abort();
		}
	}
	{
		char buf[256];
		const char *qwhy = NULL, *qstate = NULL;

		if (seq == p->quarantine_seq) {
			qwhy = p->quarantine_reason;
			qstate = p->quarantine_state;
		} else {
			qwhy = too_long(&cols, buf, sizeof(buf));
		}
		if (qwhy != NULL) {
			char *q = quarantine(p, b, seq, record, record_len, &cols, qwhy, qstate);

			free(wrapped);
			wrapped = q;
			payload = wrapped;
			len = strlen(wrapped);
			mf_audit_cols_free(&cols);
			if (mf_audit_derive(payload, len, &cols, &err) < 0) {
				mf_log_error("cannot quarantine a record: %s", err.msg);
				abort();
			}
		}
	}
	b->types |= auditd_type_bit(cols.type);
	mf_audit_hash(hash, p->head, p->node, seq, payload, len);

	batch_reserve(b, 2);
	put_u16(b, 10); /* columns, in the order of ship.c's COPY statement */
	put_field(b, p->node, p->node_len);
	put_int8(b, seq);
	put_int8(b, (cols.time_ok ? cols.time_us : now_us()) - PG_EPOCH_US);
	put_str(b, cols.type);
	put_str(b, cols.username);
	put_str(b, cols.session);
	put_inet(b, cols.ip);
	put_field(b, payload, len);
	put_field(b, p->head, MF_AUDIT_HASH_BYTES);
	put_field(b, hash, MF_AUDIT_HASH_BYTES);

	memcpy(p->head, hash, MF_AUDIT_HASH_BYTES);
	p->seq = seq;
	b->n++;
	mf_audit_cols_free(&cols);
	free(wrapped);
}

/* Damaged spool bytes become an event of their own. */
static int add_damage(struct auditd_prep *p, struct auditd_batch *b, const char *why)
{
	struct mf_spool_pos at;
	uint64_t dlen;
	struct mf_event *ev = mf_event_new("spool_damage", p->node);
	const char *json;
	size_t jlen;

	mf_log_error("spool: %s", why);
	mf_spool_reader_damage(p->reader, &at, &dlen);
	mf_event_add_int(ev, "segment", (int64_t)at.segment);
	mf_event_add_int(ev, "offset", (int64_t)at.offset);
	mf_event_add_int(ev, "length", (int64_t)dlen);
	mf_event_add_str(ev, "reason", why);
	json = mf_event_json(ev, &jlen);
	if (json == NULL) {
		mf_event_free(&ev);
		return -1;
	}
	add_record(p, b, json, jlen);
	mf_event_free(&ev);
	return 0;
}

/* Read up to batch_size records into b. */
static void prepare(struct auditd_prep *p, struct auditd_batch *b)
{
	const void *payload;
	size_t len;
	struct mf_spool_pos rpos;
	struct mf_error e;

	b->first_seq = p->seq + 1;
	b->end = MF_SPOOL_RECORD;
	while (b->n < p->batch_size) {
		enum mf_spool_status st;

		/* finding a record the database refuses: one event per batch */
		if (b->n > 0 && p->seq < p->careful_until)
			break;

		/* a stop (reset, shutdown) does not wait for a whole batch: the
		   batch is thrown away anyway */
		if ((b->n & 255) == 255 && __atomic_load_n(&p->stop, __ATOMIC_RELAXED))
			break;
		st = mf_spool_read(p->reader, &payload, &len, &rpos, &e);

		if (st == MF_SPOOL_RECORD) {
			add_record(p, b, payload, len);
			b->pos = rpos;
		} else if (st == MF_SPOOL_CORRUPT) {
			if (add_damage(p, b, e.msg) < 0) {
				snprintf(b->error, sizeof(b->error), "out of memory");
				b->end = MF_SPOOL_ERROR;
				return;
			}
			b->pos = rpos;
		} else if (st == MF_SPOOL_ERROR) {
			memcpy(b->error, e.msg, sizeof(b->error));
			b->end = st;
			return;
		} else {
			b->end = st; /* EMPTY, or TORN at end_pos */
			b->end_pos = rpos;
			break;
		}
	}
	b->last_seq = p->seq;
	memcpy(b->head, p->head, MF_AUDIT_HASH_BYTES);
}

/* ------------------------------------------------------------ thread */

static void batch_free_quarantine(struct auditd_batch *b);

static void *prep_main(void *arg)
{
	struct auditd_prep *p = arg;
	struct auditd_batch *b;
	bool ahead;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (!p->want) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		p->want = false;
		p->busy = true;
		b = p->spare;
		p->spare = NULL;
		ahead = p->ahead;
		pthread_mutex_unlock(&p->lock);

		if (b == NULL && (b = calloc(1, sizeof(*b))) == NULL) {
			mf_log_error("out of memory");
			abort();
		}
		b->len = 0;
		b->n = 0;
		b->ahead = ahead;
		b->types = 0;
		b->error[0] = '\0';
		b->pos = (struct mf_spool_pos){0, 0};
		batch_free_quarantine(b);
		prepare(p, b);
		if (b->n == 0)
			b->pos = b->end_pos;

		pthread_mutex_lock(&p->lock);
		p->busy = false;
		p->ready = b;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void batch_free_quarantine(struct auditd_batch *b)
{
	while (b->quarantine != NULL) {
		struct auditd_quarantine *q = b->quarantine;

		b->quarantine = q->next;
		free(q->record);
		free(q->reason);
		free(q);
	}
}

void auditd_batch_free(struct auditd_batch *b)
{
	if (b != NULL) {
		batch_free_quarantine(b);
		free(b->data);
		free(b);
	}
}

int auditd_prep_start(struct auditd *d, int64_t batch_size, struct mf_error *err)
{
	struct auditd_prep *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	int rc;

	if (p == NULL)
		return mf_error_set(err, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->reader = d->reader;
	p->node = d->node;
	p->node_len = strlen(d->node);
	p->producers = d->producers;
	p->batch_size = batch_size > 0 ? batch_size : 1;
	p->seq = d->seq;
	memcpy(p->head, d->head, MF_AUDIT_HASH_BYTES);
	p->careful_until = d->careful_until;
	p->quarantine_seq = d->quarantine_seq;
	memcpy(p->quarantine_reason, d->quarantine_reason, sizeof(p->quarantine_reason));
	memcpy(p->quarantine_state, d->quarantine_state, sizeof(p->quarantine_state));
	/* signals are for the main thread (they end its naps) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&p->thread, NULL, prep_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return mf_error_set(err, "cannot start the preparing thread: %s", strerror(rc));
	}
	d->prep = p;
	return 0;
}

void auditd_prep_stop(struct auditd *d)
{
	struct auditd_prep *p = d->prep;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	__atomic_store_n(&p->stop, true, __ATOMIC_RELAXED); /* also read unlocked in prepare() */
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	auditd_batch_free(p->ready);
	auditd_batch_free(p->spare);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	d->prep = NULL;
}

struct auditd_batch *auditd_prep_take(struct auditd *d)
{
	struct auditd_prep *p = d->prep;
	struct auditd_batch *b;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->ready == NULL && !p->busy) {
			p->want = true;
			p->ahead = false;
			pthread_cond_broadcast(&p->cond);
		}
		while (p->ready == NULL)
			pthread_cond_wait(&p->cond, &p->lock);
		b = p->ready;
		p->ready = NULL;
		/* "nothing more" read ahead may be stale by now (and would end a
		   drain early): read again */
		if (b->n > 0 || !b->ahead || b->end == MF_SPOOL_ERROR)
			break;
		if (p->spare == NULL)
			p->spare = b;
		else
			auditd_batch_free(b);
	}
	if (b->n > 0 && b->end != MF_SPOOL_ERROR) {
		/* more is likely there: read it while this one is stored */
		p->want = true;
		p->ahead = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return b;
}

void auditd_prep_release(struct auditd *d, struct auditd_batch *b)
{
	struct auditd_prep *p = d->prep;

	if (p == NULL) {
		auditd_batch_free(b);
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (p->spare == NULL) {
		p->spare = b;
		b = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	auditd_batch_free(b);
}
