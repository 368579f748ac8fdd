/*
 * audit-chain.c - hash chain, checkpoint signatures and column derivation
 * for the audit trail (see mf-audit-chain.h for the exact formats).
 *
 * Pure functions: no I/O, no global state.  mf_audit_derive reports a
 * payload that is not a JSON object with a string "type"; the other
 * functions cannot fail except mf_audit_checkpoint_verify on a bad
 * signature.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <sodium.h>

#include "mf-audit-chain.h"

static const char hash_domain[] = "mailfort-audit-v1";
static const char checkpoint_domain[] = "mailfort-audit-checkpoint-v1";
static const char retirement_domain[] = "mailfort-audit-retirement-v1";

static void put_u64be(unsigned char b[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static void put_u32be(unsigned char b[4], uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

void mf_audit_hash(unsigned char out[MF_AUDIT_HASH_BYTES],
                   const unsigned char prev[MF_AUDIT_HASH_BYTES], const char *node, int64_t seq,
                   const char *payload, size_t payload_len)
{
	crypto_generichash_state st;
	unsigned char b8[8], b4[4];
	size_t nlen = strlen(node);

	crypto_generichash_init(&st, NULL, 0, MF_AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)hash_domain, sizeof(hash_domain) - 1);
	crypto_generichash_update(&st, prev, MF_AUDIT_HASH_BYTES);
	put_u64be(b8, (uint64_t)seq);
	crypto_generichash_update(&st, b8, 8);
	put_u32be(b4, (uint32_t)nlen);
	crypto_generichash_update(&st, b4, 4);
	crypto_generichash_update(&st, (const unsigned char *)node, nlen);
	put_u32be(b4, (uint32_t)payload_len);
	crypto_generichash_update(&st, b4, 4);
	crypto_generichash_update(&st, (const unsigned char *)payload, payload_len);
	crypto_generichash_final(&st, out, MF_AUDIT_HASH_BYTES);
}

/* The signed message; returns its length (buf must hold 512 + node). */
static size_t checkpoint_message(unsigned char *buf, const char *node, int64_t seq, int64_t count,
                                 const unsigned char head[MF_AUDIT_HASH_BYTES])
{
	size_t nlen = strlen(node), n = 0;

	memcpy(buf, checkpoint_domain, sizeof(checkpoint_domain) - 1);
	n += sizeof(checkpoint_domain) - 1;
	put_u32be(buf + n, (uint32_t)nlen);
	n += 4;
	memcpy(buf + n, node, nlen);
	n += nlen;
	put_u64be(buf + n, (uint64_t)seq);
	n += 8;
	put_u64be(buf + n, (uint64_t)count);
	n += 8;
	memcpy(buf + n, head, MF_AUDIT_HASH_BYTES);
	return n + MF_AUDIT_HASH_BYTES;
}

void mf_audit_checkpoint_sign(unsigned char sig[MF_AUDIT_SIG_BYTES], const char *node, int64_t seq,
                              int64_t count, const unsigned char head[MF_AUDIT_HASH_BYTES],
                              const unsigned char sk[MF_AUDIT_SK_BYTES])
{
	unsigned char *buf = malloc(128 + strlen(node));
	size_t len;

	if (buf == NULL)
		abort();
	len = checkpoint_message(buf, node, seq, count, head);
	crypto_sign_detached(sig, NULL, buf, len, sk);
	free(buf);
}

int mf_audit_checkpoint_verify(const unsigned char sig[MF_AUDIT_SIG_BYTES], const char *node,
                               int64_t seq, int64_t count,
                               const unsigned char head[MF_AUDIT_HASH_BYTES],
                               const unsigned char pk[MF_AUDIT_PK_BYTES])
{
	unsigned char *buf = malloc(128 + strlen(node));
	size_t len;
	int ret;

	if (buf == NULL)
		abort();
	len = checkpoint_message(buf, node, seq, count, head);
	ret = crypto_sign_verify_detached(sig, buf, len, pk);
	free(buf);
	return ret == 0 ? 0 : -1;
}

/* The signed retirement statement; returns its length in a malloc'd *buf_r. */
static size_t retirement_message(unsigned char **buf_r, const struct mf_audit_retirement *r)
{
	size_t nlen = strlen(r->node), plen = strlen(r->partition), n = 0;
	unsigned char *buf =
	    malloc(sizeof(retirement_domain) + 8 + nlen + plen + 24 + MF_AUDIT_HASH_BYTES);

	if (buf == NULL)
		abort();
	memcpy(buf, retirement_domain, sizeof(retirement_domain) - 1);
	n += sizeof(retirement_domain) - 1;
	put_u32be(buf + n, (uint32_t)nlen);
	n += 4;
	memcpy(buf + n, r->node, nlen);
	n += nlen;
	put_u32be(buf + n, (uint32_t)plen);
	n += 4;
	memcpy(buf + n, r->partition, plen);
	n += plen;
	put_u64be(buf + n, (uint64_t)r->first_seq);
	n += 8;
	put_u64be(buf + n, (uint64_t)r->last_seq);
	n += 8;
	put_u64be(buf + n, (uint64_t)r->count);
	n += 8;
	memcpy(buf + n, r->last_hash, MF_AUDIT_HASH_BYTES);
	*buf_r = buf;
	return n + MF_AUDIT_HASH_BYTES;
}

void mf_audit_retirement_sign(unsigned char sig[MF_AUDIT_SIG_BYTES],
                              const struct mf_audit_retirement *r,
                              const unsigned char sk[MF_AUDIT_SK_BYTES])
{
	unsigned char *buf;
	size_t len = retirement_message(&buf, r);

	crypto_sign_detached(sig, NULL, buf, len, sk);
	free(buf);
}

int mf_audit_retirement_verify(const unsigned char sig[MF_AUDIT_SIG_BYTES],
                               const struct mf_audit_retirement *r,
                               const unsigned char pk[MF_AUDIT_PK_BYTES])
{
	unsigned char *buf;
	size_t len = retirement_message(&buf, r);
	int ret = crypto_sign_verify_detached(sig, buf, len, pk);

	free(buf);
	return ret == 0 ? 0 : -1;
}

static int parse_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		*v = *v * 10 + (**p - '0');
		(*p)++;
	}
	return 0;
}

int mf_audit_parse_time(const char *s, int64_t *us_r)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, us = 0, off = 0;
	const char *p = s;
	time_t t;

	if (parse_digits(&p, 4, &y) < 0 || *p++ != '-' || parse_digits(&p, 2, &mo) < 0 ||
	    *p++ != '-' || parse_digits(&p, 2, &d) < 0 || (*p != 'T' && *p != ' '))
		return -1;
	p++;
	if (parse_digits(&p, 2, &h) < 0 || *p++ != ':' || parse_digits(&p, 2, &mi) < 0 ||
	    *p++ != ':' || parse_digits(&p, 2, &sec) < 0)
		return -1;
	if (*p == '.') {
		int digits = 0;

		p++;
		while (isdigit((unsigned char)*p)) {
			if (digits < 6) {
				us = us * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return -1;
		while (digits++ < 6)
			us *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, sign = *p == '-' ? -1 : 1;

		p++;
		if (parse_digits(&p, 2, &oh) < 0 || *p++ != ':' || parse_digits(&p, 2, &om) < 0)
			return -1;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*us_r = ((int64_t)t - off) * 1000000 + us;
	return 0;
}

int mf_audit_canon_ip(const char *s, char *out, size_t outlen)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, s, buf) == 1)
		return inet_ntop(AF_INET, buf, out, (socklen_t)outlen) != NULL ? 0 : -1;
	if (inet_pton(AF_INET6, s, buf) == 1)
		return inet_ntop(AF_INET6, buf, out, (socklen_t)outlen) != NULL ? 0 : -1;
	return -1;
}

static char *dup_field(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

int mf_audit_derive(const char *payload, size_t len, struct mf_audit_cols *cols,
                    struct mf_error *err)
{
	struct json_tokener *tok;
	struct json_object *obj;
	char *ip, canon[64];

	memset(cols, 0, sizeof(*cols));
	if (len > 0x7fffffff)
		return mf_error_set(err, "event of %zu bytes is too large", len);
	tok = json_tokener_new();
	if (tok == NULL)
		return mf_error_set(err, "out of memory");
	obj = json_tokener_parse_ex(tok, payload, (int)len);
	if (obj == NULL || json_tokener_get_parse_end(tok) != len) {
		json_tokener_free(tok);
		if (obj != NULL)
			json_object_put(obj);
		return mf_error_set(err, "event is not valid JSON");
	}
	json_tokener_free(tok);
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return mf_error_set(err, "event is not a JSON object");
	}
	cols->type = dup_field(obj, "type");
	if (cols->type == NULL || cols->type[0] == '\0') {
		json_object_put(obj);
		mf_audit_cols_free(cols);
		return mf_error_set(err, "event has no \"type\"");
	}
	cols->username = dup_field(obj, "user");
	cols->session = dup_field(obj, "session");
	ip = dup_field(obj, "ip");
	if (ip != NULL && mf_audit_canon_ip(ip, canon, sizeof(canon)) == 0)
		cols->ip = strdup(canon);
	free(ip);
	{
		char *t = dup_field(obj, "time");

		cols->time_ok = t != NULL && mf_audit_parse_time(t, &cols->time_us) == 0;
		free(t);
	}
	json_object_put(obj);
	return 0;
}

void mf_audit_cols_free(struct mf_audit_cols *cols)
{
	free(cols->type);
	free(cols->username);
	free(cols->session);
	free(cols->ip);
	memset(cols, 0, sizeof(*cols));
}
