/*
 * fuzz_protocol.c: libFuzzer target for the function protocol decoder.
 *
 * The input is what a session function writes to its socket.  Its first
 * byte sets the size of the pieces the rest arrives in (the socket may
 * split a message anywhere); the pieces are gathered as session_on_sock
 * gathers them and cut into messages by fx_frame_next, the worker's own
 * framing.  Each message then goes through fx_message_parse and the
 * readers the worker's handlers apply to it: fx_json_member for every
 * member (as "value", "output" and "params" are read), fx_json_elements
 * for arrays (as sql's "params" are), fx_json_raw (as results and state
 * are passed on) and fx_txn_refuse for a "query".  The same bytes are
 * also read as a simple-mode function's stdout, by fx_exec_result, and
 * as a log line, by fx_utf8_clean.
 *
 * Besides the sanitizers it checks:
 * - the messages do not depend on how the bytes were split;
 * - fx_json_check takes exactly what PostgreSQL's jsonb takes (RFC 8259,
 *   UTF-8, no \u0000 or unpaired surrogate, numbers numeric can hold:
 *   the rules below, checked against PostgreSQL 15 by hand);
 * - fx_message_parse returns an object with a string "type", or NULL; it
 *   finds nothing wrong only in a message PostgreSQL takes, and then
 *   everything the worker passes on from it as written (a "value", an
 *   "output", "args", "payload", a "params" element) is such JSON too;
 *   the members it parsed are cJSON's, with the text members null and
 *   arrays and objects empty, but for the elements of "params";
 * - the text fx_json_member finds is one whole JSON value equal to a
 *   member of that name as cJSON parsed it, and when no key is written
 *   with an escape it finds every member cJSON found;
 * - fx_json_elements finds as many elements as cJSON, each equal;
 * - fx_json_raw and fx_exec_result pass the text on unchanged (fx_json_raw
 *   cuts text holding a NUL byte, which fx_json_check never passes), and
 *   fx_exec_result takes exactly what jsonb takes;
 * - fx_utf8_clean makes valid UTF-8 without NUL, and leaves such text as
 *   it is.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fx/fx_common.h"
#include "fx_exec.h"
#include "fx_json.h"
#include "fx_log.h"
#include "fx_txn.h"

#define MAX_FRAMES 256
#define MAX_ELEMENTS 64
#define MAX_DEPTH 1000

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct frames
{
	size_t		off[MAX_FRAMES];	/* of each body in the stream */
	size_t		len[MAX_FRAMES];
	int			n;
	bool		too_big;		/* the stream ended in a protocol error */
} frames;

static void fail(const char *what, const char *text, size_t n)
			__attribute__((noreturn));

static void
fail(const char *what, const char *text, size_t n)
{
	fprintf(stderr, "fuzz_protocol: %s\n", what);
	if (text != NULL)
		fprintf(stderr, "  text (%zu bytes): %.*s\n", n,
				(int) (n < 400 ? n : 400), text);
	abort();
}

/* ---------------------------------------------------------------------
 * JSON as PostgreSQL's jsonb reads it (RFC 8259, UTF-8, no \u0000)
 * --------------------------------------------------------------------- */

static const char *pg_value(const char *p, const char *end, int depth);

static const char *
pg_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *
pg_digits(const char *p, const char *end)
{
	const char *start = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p > start ? p : NULL;
}

/*
 * A number, within numeric's range as PostgreSQL 15's numeric_in has it:
 * an exponent below INT_MAX / 2 in size; at most 16383 digits after the
 * point once the exponent is applied (trailing zeros count: 1.0e-16383 is
 * refused); and, unless it is zero, its first non-zero digit at 10^131071
 * or below (0.001e131074 is taken, 10e131071 is not).
 */
static const char *
pg_number(const char *p, const char *end)
{
	const char *ip;
	const char *fp = NULL;
	long		ilen;
	long		flen = 0;
	long long	exp = 0;
	long long	first = 0;		/* the power of ten of the first non-zero digit */
	bool		zero = true;
	bool		neg = false;

	if (p < end && *p == '-')
		p++;
	ip = p;
	if (p < end && *p == '0')
		p++;
	else if ((p = pg_digits(p, end)) == NULL)
		return NULL;
	ilen = p - ip;
	if (p < end && *p == '.')
	{
		fp = p + 1;
		if ((p = pg_digits(fp, end)) == NULL)
			return NULL;
		flen = p - fp;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		const char *start;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			neg = *p++ == '-';
		for (start = p; p < end && *p >= '0' && *p <= '9'; p++)
			exp = exp < (1LL << 40) ? exp * 10 + (*p - '0') : exp;
		if (p == start)
			return NULL;
		exp = neg ? -exp : exp;
	}
	for (long i = 0; i < ilen + flen && zero; i++)
	{
		char		d = i < ilen ? ip[i] : fp[i - ilen];

		if (d != '0')
		{
			zero = false;
			first = ilen - 1 - i;
		}
	}
	if (exp >= 1073741823 || exp <= -1073741823 || flen - exp > 16383 ||
		(!zero && first + exp > 131071))
		return NULL;
	return p;
}

/* The \uXXXX escape at p, or -1. */
static long
pg_hex4(const char *p, const char *end)
{
	char		hex[5];
	char	   *stop;
	long		v;

	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	memcpy(hex, p + 2, 4);
	hex[4] = '\0';
	v = strtol(hex, &stop, 16);
	return *stop == '\0' && strspn(hex, "0123456789abcdefABCDEF") == 4 ? v : -1;
}

static const char *
pg_string(const char *p, const char *end)
{
	for (p++; p < end; p++)
	{
		long		u;

		if (*p == '"')
			return p + 1;
		if ((unsigned char) *p < 0x20)
			return NULL;
		if (*p != '\\')
			continue;
		if (p + 1 < end && strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0')
		{
			p++;
			continue;
		}
		u = pg_hex4(p, end);
		if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff))
			return NULL;		/* not an escape, \u0000, a lone low surrogate */
		p += 5;
		if (u >= 0xd800 && u <= 0xdbff)
		{
			u = pg_hex4(p + 1, end);
			if (u < 0xdc00 || u > 0xdfff)
				return NULL;
			p += 6;
		}
	}
	return NULL;
}

static const char *
pg_container(const char *p, const char *end, int depth)
{
	char		close = *p == '{' ? '}' : ']';

	if (depth >= MAX_DEPTH)
		return NULL;			/* 1000 levels, as cJSON */
	p = pg_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;)
	{
		if (close == '}')
		{
			if (p >= end || *p != '"' || (p = pg_string(p, end)) == NULL)
				return NULL;
			p = pg_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p++;
		}
		if ((p = pg_value(p, end, depth + 1)) == NULL)
			return NULL;
		p = pg_ws(p, end);
		if (p < end && *p == ',')
		{
			p = pg_ws(p + 1, end);
			continue;
		}
		return p < end && *p == close ? p + 1 : NULL;
	}
}

static const char *
pg_value(const char *p, const char *end, int depth)
{
	static const char *const words[] = {"true", "false", "null", NULL};

	p = pg_ws(p, end);
	if (p >= end || depth > MAX_DEPTH)
		return NULL;
	if (*p == '"')
		return pg_string(p, end);
	if (*p == '{' || *p == '[')
		return pg_container(p, end, depth);
	for (int i = 0; words[i] != NULL; i++)
		if ((size_t) (end - p) >= strlen(words[i]) &&
			memcmp(p, words[i], strlen(words[i])) == 0)
			return p + strlen(words[i]);
	return pg_number(p, end);
}

static bool
utf8_valid(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;)
	{
		unsigned char c = p[i];
		size_t		k = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 :
			c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 9;
		unsigned long cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;

		if (k == 9 || n - i <= k)
			return k == 0;
		for (size_t j = 1; j <= k; j++)
		{
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
			(k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

/* Would PostgreSQL take text[0..n) as jsonb? */
static bool
pg_json(const char *text, size_t n)
{
	const char *end = text + n;
	const char *p = pg_value(text, end, 0);

	return p != NULL && pg_ws(p, end) == end &&
		utf8_valid((const unsigned char *) text, n);
}

/* Text the worker passes on as written is jsonb. */
static void
check_passed_on(const char *text, size_t n, const char *what)
{
	if (!pg_json(text, n))
		fail(what, text, n);
}

/* fx_json_check against the rules above. */
static bool
check_strict(const char *text, size_t n)
{
	size_t		at = SIZE_MAX;
	const char *why = fx_json_check(text, n, &at);
	bool		pg = pg_json(text, n);

	if ((why == NULL) != pg)
		fail(pg ? "fx_json_check refuses what PostgreSQL takes" :
			 "fx_json_check takes what PostgreSQL refuses", text, n);
	if (at > n)
		fail("fx_json_check reports a fault outside the text", text, n);
	return pg;
}

/*
 * Cut buf[0..len) into messages as session_on_sock does, the bytes
 * arriving CHUNK at a time (all at once if CHUNK is 0).
 */
static void
decode(const char *buf, size_t len, size_t chunk, frames *f)
{
	char	   *rbuf = NULL;
	size_t		rlen = 0;
	size_t		done = 0;		/* stream offset of rbuf[0] */
	size_t		fed = 0;

	memset(f, 0, sizeof(*f));
	while (fed < len && !f->too_big && f->n < MAX_FRAMES)
	{
		size_t		n = chunk == 0 || len - fed < chunk ? len - fed : chunk;
		size_t		off = 0;

		rbuf = realloc(rbuf, rlen + n);
		if (rbuf == NULL)
			abort();
		memcpy(rbuf + rlen, buf + fed, n);
		rlen += n;
		fed += n;
		while (f->n < MAX_FRAMES)
		{
			const char *body;
			size_t		blen;
			int			r = fx_frame_next(rbuf + off, rlen - off, &body, &blen);

			if (r < 0)
			{
				if (blen <= FX_MAX_MESSAGE)
					fail("fx_frame_next refused a message within the limit", NULL, 0);
				f->too_big = true;
				break;
			}
			if (r == 0)
				break;
			if (blen > FX_MAX_MESSAGE || body != rbuf + off + 4 || 4 + blen > rlen - off)
				fail("fx_frame_next returned a body outside its frame", NULL, 0);
			f->off[f->n] = done + off + 4;
			f->len[f->n] = blen;
			f->n++;
			off += 4 + blen;
		}
		memmove(rbuf, rbuf + off, rlen - off);
		rlen -= off;
		done += off;
	}
	free(rbuf);
}

/*
 * cJSON_Compare, but numbers are equal when their doubles are: it finds
 * an infinity (1e999) unequal to itself.
 */
static bool
same_value(const cJSON *a, const cJSON *b)
{
	const cJSON *x;
	const cJSON *y;

	if (a == NULL || b == NULL || (a->type & 0xff) != (b->type & 0xff))
		return false;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
		return cJSON_Compare(a, b, true);
	for (x = a->child, y = b->child; x != NULL && y != NULL; x = x->next, y = y->next)
		if ((cJSON_IsObject(a) && strcmp(x->string, y->string) != 0) || !same_value(x, y))
			return false;
	return x == NULL && y == NULL;
}

/* Is text[0..n) exactly one JSON value, nothing before or after it? */
static bool
one_value(const char *text, size_t n)
{
	const char *end = NULL;
	cJSON	   *v = cJSON_ParseWithLengthOpts(text, n, &end, false);

	cJSON_Delete(v);
	return v != NULL && end == text + n;
}

/* text[0..n) is exactly one JSON value, equal to want. */
static void
check_same(const char *text, size_t n, const cJSON *want, const char *what)
{
	cJSON	   *got = cJSON_ParseWithLength(text, n);
	bool		same = got != NULL && same_value(got, want);

	cJSON_Delete(got);
	if (!same || !one_value(text, n))
		fail(what, text, n);
}

/* fx_json_raw passes text[0..n) on unchanged. */
static void
check_raw(const char *text, size_t n)
{
	cJSON	   *raw = fx_json_raw(text, n);
	char	   *out = cJSON_PrintUnformatted(raw);

	if (out == NULL || strlen(out) != n || memcmp(out, text, n) != 0)
		fail("fx_json_raw does not pass the value on as written", text, n);
	cJSON_free(out);
	cJSON_Delete(raw);
}

/*
 * The elements of the array text[0..n), against cJSON's array arr;
 * PARAMS: they are sql parameters, passed on.
 */
static void
check_elements(const char *text, size_t n, const cJSON *arr, bool params)
{
	const char *starts[MAX_ELEMENTS];
	size_t		lens[MAX_ELEMENTS];
	int			count = fx_json_elements(text, n, starts, lens, MAX_ELEMENTS);
	int			i = 0;
	const cJSON *x;

	if (count != cJSON_GetArraySize(arr))
		fail("fx_json_elements counts differently from cJSON", text, n);
	cJSON_ArrayForEach(x, arr)
	{
		if (i >= MAX_ELEMENTS)
			break;
		if (starts[i] < text || starts[i] + lens[i] > text + n)
			fail("fx_json_elements returned an element outside the array", text, n);
		check_same(starts[i], lens[i], x,
				   "fx_json_elements returned an element that is not the array's");
		if (params)
			check_passed_on(starts[i], lens[i],
							"the worker passes on a parameter PostgreSQL refuses");
		i++;
	}
}

/* Is want one of obj's members named key? */
static bool
is_member(const cJSON *obj, const char *key, const char *text, size_t n)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, obj)
	{
		cJSON	   *got;
		bool		same;

		if (c->string == NULL || strcmp(c->string, key) != 0)
			continue;
		got = cJSON_ParseWithLength(text, n);
		same = got != NULL && same_value(got, c);
		cJSON_Delete(got);
		if (same)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

/*
 * Member c of msg (the message as cJSON parses it whole), found by
 * fx_json_member as text v[0..len): the same value, passed on unchanged
 * (PASSED: the worker found nothing wrong with the message).
 */
static void
check_member(const cJSON *msg, const cJSON *c, const char *v, size_t len, bool passed)
{
	static const char *const text_members[] = {"value", "output", "args", "payload",
	"query", "params", NULL};
	cJSON	   *arr;

	if (!one_value(v, len))
		fail("fx_json_member returned text that is not one JSON value", v, len);
	if (!is_member(msg, c->string, v, len))
		fail("fx_json_member returned a value that is no member of that name", v, len);
	if (memchr(v, '\0', len) == NULL)	/* fx_json_raw stops at a NUL */
		check_raw(v, len);
	for (int i = 0; passed && text_members[i] != NULL; i++)
		if (strcmp(c->string, text_members[i]) == 0)
			check_passed_on(v, len, "the worker passes on text PostgreSQL refuses");
	/* with duplicate keys, v may be another member than c */
	arr = cJSON_ParseWithLength(v, len);
	if (cJSON_IsArray(arr) && cJSON_GetArraySize(arr) <= MAX_ELEMENTS)
		check_elements(v, len, arr, passed && strcmp(c->string, "params") == 0);
	cJSON_Delete(arr);
}

static bool
is_text_member(const char *name)
{
	return strcmp(name, "value") == 0 || strcmp(name, "output") == 0 ||
		strcmp(name, "args") == 0 || strcmp(name, "payload") == 0;
}

/* A scalar is itself, an array or object is empty. */
static bool
shallow_of(const cJSON *got, const cJSON *want)
{
	if (cJSON_IsArray(want) || cJSON_IsObject(want))
		return (got->type & 0xff) == (want->type & 0xff) && got->child == NULL;
	return same_value(got, want);
}

/*
 * The message fx_message_parse made, against the whole one (full): the
 * same members in the same order; text members null, arrays and objects
 * empty, the elements of "params" each shallow.  PLAIN: no key is written
 * with an escape, so the names fx_json_parse_message sees are cJSON's.
 */
static void
check_parsed(const cJSON *msg, const cJSON *full, bool plain, const char *body, size_t n)
{
	const cJSON *x;
	const cJSON *y;

	for (x = full->child, y = msg->child; x != NULL && y != NULL; x = x->next, y = y->next)
	{
		bool		shallow = shallow_of(y, x);

		if (strcmp(x->string, y->string) != 0)
			fail("fx_message_parse changed the members", body, n);
		if (is_text_member(x->string) && (plain || !shallow))
		{
			if (!cJSON_IsNull(y))
				fail("fx_message_parse kept a text member", body, n);
		}
		else if (strcmp(x->string, "params") == 0 && cJSON_IsArray(x) &&
				 (plain || !shallow))
		{
			const cJSON *xe;
			const cJSON *ye;

			if (!cJSON_IsArray(y) || cJSON_GetArraySize(x) != cJSON_GetArraySize(y))
				fail("fx_message_parse lost elements of \"params\"", body, n);
			for (xe = x->child, ye = y->child; xe && ye; xe = xe->next, ye = ye->next)
				if (!shallow_of(ye, xe))
					fail("fx_message_parse changed an element of \"params\"", body, n);
		}
		else if (!shallow)
			fail("fx_message_parse changed a member", body, n);
	}
	if (x != NULL || y != NULL)
		fail("fx_message_parse has other members than cJSON", body, n);
}

/* What the worker's handlers read from one message. */
static void
read_message(const char *body, size_t n)
{
	char	   *why;
	cJSON	   *msg = fx_message_parse(body, n, &why);
	bool		pg = check_strict(body, n);
	bool		passed = msg != NULL && why == NULL;
	cJSON	   *full = cJSON_ParseWithLength(body, n);
	bool		plain = memchr(body, '\\', n) == NULL && memchr(body, '\0', n) == NULL;
	const cJSON *c;
	const cJSON *query;
	const char *probe[] = {"value", "output", "params", "type", "seq", "id", NULL};

	if (msg != NULL && !cJSON_IsString(cJSON_GetObjectItem(msg, "type")))
		fail("fx_message_parse accepted a message without a string \"type\"", body, n);
	if (passed && !pg)
		fail("fx_message_parse passed a message PostgreSQL refuses", body, n);
	if (why != NULL && pg)
		fail("fx_message_parse refused a message PostgreSQL takes", body, n);
	if (passed && (!cJSON_IsObject(full) ||
				   !cJSON_IsString(cJSON_GetObjectItem(full, "type"))))
		fail("fx_message_parse passed a message that is no object with a \"type\"", body, n);
	if (pg && cJSON_IsObject(full) &&
		cJSON_IsString(cJSON_GetObjectItem(full, "type")) && !passed)
		fail("fx_message_parse refused a good message", body, n);
	if (passed)
		check_parsed(msg, full, plain, body, n);
	free(why);
	cJSON_Delete(msg);
	if (!cJSON_IsObject(full))
	{
		cJSON_Delete(full);
		return;
	}
	cJSON_ArrayForEach(c, full)
	{
		const char *v;
		size_t		len;

		if (c->string == NULL)
			continue;
		v = fx_json_member(body, n, c->string, &len);
		if (v == NULL && plain)
			fail("fx_json_member misses a member cJSON found", body, n);
		if (v == NULL)
			continue;
		if (v < body || v + len > body + n)
			fail("fx_json_member returned text outside the message", body, n);
		check_member(full, c, v, len, passed);
	}
	for (int i = 0; probe[i] != NULL; i++)
	{
		size_t		len;
		const char *v = fx_json_member(body, n, probe[i], &len);

		if (v != NULL && !is_member(full, probe[i], v, len))
			fail("fx_json_member found a member cJSON does not have", v, len);
	}
	query = cJSON_GetObjectItem(full, "query");
	if (cJSON_IsString(query))
		(void) fx_txn_refuse(query->valuestring);
	cJSON_Delete(full);
}

/* The bytes as a simple-mode function's stdout. */
static void
read_stdout(const char *buf, size_t len)
{
	char	   *out = fx_xmalloc(len + 1);
	char	   *why;
	cJSON	   *result;
	char	   *text;
	bool		blank;

	memcpy(out, buf, len);
	out[len] = '\0';
	blank = strspn(out, " \t\r\n") == len;
	result = fx_exec_result(out, len, &why);
	if ((result != NULL) != (blank || check_strict(out, len)))
		fail("fx_exec_result does not take exactly what PostgreSQL takes", out, len);
	if ((result == NULL) != (why != NULL))
		fail("fx_exec_result refuses without saying why", out, len);
	if (result != NULL && !cJSON_IsNull(result))
	{
		text = cJSON_PrintUnformatted(result);
		if (text == NULL || strlen(text) != len || memcmp(text, out, len) != 0)
			fail("fx_exec_result does not pass stdout on as written", out, len);
		check_passed_on(text, strlen(text), "the worker passes on stdout PostgreSQL refuses");
		cJSON_free(text);
	}
	free(why);
	cJSON_Delete(result);
	free(out);
}

/* The bytes as a log line. */
static void
read_log(const char *buf, size_t len)
{
	char	   *clean = fx_utf8_clean(buf, len);
	size_t		n = strlen(clean);

	if (!utf8_valid((const unsigned char *) clean, n))
		fail("fx_utf8_clean made invalid UTF-8", buf, len);
	if (utf8_valid((const unsigned char *) buf, len) && memchr(buf, '\0', len) == NULL &&
		(n != len || memcmp(clean, buf, len) != 0))
		fail("fx_utf8_clean changed valid UTF-8", buf, len);
	free(clean);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static frames whole;
	static frames split;
	const char *buf = (const char *) data + 1;
	size_t		len;

	if (size < 1)
		return 0;
	len = size - 1;
	decode(buf, len, 0, &whole);
	decode(buf, len, (size_t) data[0] + 1, &split);
	if (whole.n != split.n || whole.too_big != split.too_big ||
		memcmp(whole.off, split.off, sizeof(size_t) * whole.n) != 0 ||
		memcmp(whole.len, split.len, sizeof(size_t) * whole.n) != 0)
		fail("the messages depend on how the bytes arrive", NULL, 0);
	for (int i = 0; i < whole.n; i++)
		read_message(buf + whole.off[i], whole.len[i]);
	read_stdout(buf, len);
	read_log(buf, len);
	return 0;
}
