/*
 * audit-anchor.c - write and read anchor lines (mf-audit-anchor.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mf-audit-anchor.h"

static void hex(char *out, const unsigned char *in, size_t len)
{
	sodium_bin2hex(out, len * 2 + 1, in, len);
}

int mf_audit_anchor_format(const struct mf_audit_anchor *a, char *buf, size_t size)
{
	char node[3 * sizeof(a->node)], head[MF_AUDIT_HASH_BYTES * 2 + 1];
	char pk[MF_AUDIT_PK_BYTES * 2 + 1], sig[MF_AUDIT_SIG_BYTES * 2 + 1];
	size_t o = 0;
	int n;

	for (const unsigned char *p = (const unsigned char *)a->node; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')
			node[o++] = (char)*p;
		else
			o += (size_t)snprintf(node + o, 4, "%%%02X", *p);
	}
	node[o] = '\0';
	hex(head, a->head, sizeof(a->head));
	hex(pk, a->pk, sizeof(a->pk));
	hex(sig, a->sig, sizeof(a->sig));
	n = snprintf(buf, size,
	             MF_AUDIT_ANCHOR_TAG "node=%s seq=%" PRId64 " count=%" PRId64
	                                 " time=%s head=%s key=%s sig=%s",
	             node, a->seq, a->count, a->time, head, pk, sig);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* The value of " name=" in line (up to a blank), copied into out. */
static int field(const char *line, const char *name, char *out, size_t size)
{
	char key[32];
	const char *p;
	size_t n;

	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(line, key);
	if (p == NULL)
		return -1;
	p += strlen(key);
	n = strcspn(p, " \t\r\n");
	if (n == 0 || n >= size)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int unhex(const char *in, unsigned char *out, size_t len)
{
	size_t got;

	return strlen(in) == len * 2 &&
	               sodium_hex2bin(out, len, in, len * 2, NULL, &got, NULL) == 0 && got == len
	           ? 0
	           : -1;
}

static int int_field(const char *line, const char *name, int64_t *v)
{
	char buf[32], *end;

	if (field(line, name, buf, sizeof(buf)) < 0)
		return -1;
	*v = strtoll(buf, &end, 10);
	return *end == '\0' && *v >= 0 ? 0 : -1;
}

int mf_audit_anchor_parse(const char *line, struct mf_audit_anchor *a, struct mf_error *err)
{
	char node[3 * sizeof(a->node)], buf[MF_AUDIT_SIG_BYTES * 2 + 2];
	const char *p = strstr(line, MF_AUDIT_ANCHOR_TAG);
	size_t o = 0;

	if (p == NULL)
		return 1;
	p += strlen(MF_AUDIT_ANCHOR_TAG) - 1; /* keep the blank before the first field */
	memset(a, 0, sizeof(*a));
	if (field(p, "node", node, sizeof(node)) < 0)
		return mf_error_set(err, "anchor without a node");
	for (const char *q = node; *q != '\0' && o + 1 < sizeof(a->node); q++) {
		unsigned int c;

		if (*q == '%' && sscanf(q + 1, "%2X", &c) == 1 && c != 0) {
			a->node[o++] = (char)c;
			q += 2;
		} else {
			a->node[o++] = *q;
		}
	}
	a->node[o] = '\0';
	if (int_field(p, "seq", &a->seq) < 0 || int_field(p, "count", &a->count) < 0)
		return mf_error_set(err, "anchor of node %s: no valid seq or count", a->node);
	if (field(p, "time", a->time, sizeof(a->time)) < 0)
		snprintf(a->time, sizeof(a->time), "unknown time");
	if (field(p, "head", buf, sizeof(buf)) < 0 || unhex(buf, a->head, sizeof(a->head)) < 0 ||
	    field(p, "key", buf, sizeof(buf)) < 0 || unhex(buf, a->pk, sizeof(a->pk)) < 0 ||
	    field(p, "sig", buf, sizeof(buf)) < 0 || unhex(buf, a->sig, sizeof(a->sig)) < 0)
		return mf_error_set(
		    err, "anchor of node %s at seq %" PRId64 ": malformed head, key or signature",
		    a->node, a->seq);
	if (mf_audit_checkpoint_verify(a->sig, a->node, a->seq, a->count, a->head, a->pk) < 0)
		return mf_error_set(
		    err, "anchor of node %s at seq %" PRId64 ": the signature does not match",
		    a->node, a->seq);
	return 0;
}
