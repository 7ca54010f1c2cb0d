/*
 * fx_json.c: check JSON text as PostgreSQL reads it, find values in it
 * without converting them.
 *
 * fx_json_check is a strict recursive-descent reader (RFC 8259 plus what
 * jsonb adds).  The finders after it take text that is valid JSON already,
 * so they only skip over it: strings (with their escapes), nested objects
 * and arrays, and scalars up to the next delimiter.
 */
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fx_json.h"
#include "fx_log.h"

/* ---------------------------------------------------------------------
 * Strict checking
 * --------------------------------------------------------------------- */

/* numeric's limits (PostgreSQL's numeric.c) */
#define NUMERIC_MAX_DSCALE 16383	/* digits after the point */
#define NUMERIC_MAX_DWEIGHT 131071	/* a first digit at 10^131071 at most */
#define NUMERIC_MAX_EXPONENT (INT_MAX / 2 - 1)	/* numeric_in's limit */

typedef struct strict
{
	const unsigned char *start;
	const unsigned char *p;
	const unsigned char *end;
	const char *why;			/* the first fault */
} strict;

static bool
fault(strict *s, const char *why)
{
	s->why = why;
	return false;
}

static void
strict_ws(strict *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool
is_digit(strict *s)
{
	return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* Digits at p: how many (0 if none). */
static long
digits(strict *s)
{
	const unsigned char *from = s->p;

	while (is_digit(s))
		s->p++;
	return (long) (s->p - from);
}

/*
 * Would numeric_in take the number with integer digits ip[0..ilen),
 * fraction digits fp[0..flen) and exponent exp?  It refuses an exponent of
 * INT_MAX / 2 or more, more than 16383 digits after the point, and a first
 * non-zero digit beyond 10^131071 (its weight in base 10000 is an int16).
 */
static bool
numeric_fits(const unsigned char *ip, long ilen, const unsigned char *fp, long flen,
			 long long exp)
{
	long long	dweight;

	if (exp > NUMERIC_MAX_EXPONENT || exp < -NUMERIC_MAX_EXPONENT)
		return false;
	if (flen - exp > NUMERIC_MAX_DSCALE)
		return false;
	for (long i = 0; i < ilen; i++)
		if (ip[i] != '0')
		{
			dweight = ilen - 1 - i + exp;
			return dweight <= NUMERIC_MAX_DWEIGHT;
		}
	for (long i = 0; i < flen; i++)
		if (fp[i] != '0')
		{
			dweight = -(i + 1) + exp;
			return dweight <= NUMERIC_MAX_DWEIGHT;
		}
	return true;				/* zero */
}

static bool
strict_number(strict *s)
{
	const unsigned char *ip;
	const unsigned char *fp = NULL;
	long		ilen;
	long		flen = 0;
	long long	exp = 0;
	const unsigned char *at = s->p;

	if (*s->p == '-')
		s->p++;
	ip = s->p;
	if ((ilen = digits(s)) == 0)
		return fault(s, "a number without digits before its point");
	if (ilen > 1 && *ip == '0')
		return fault(s, "a number with a leading zero");
	if (s->p < s->end && *s->p == '.')
	{
		s->p++;
		fp = s->p;
		if ((flen = digits(s)) == 0)
			return fault(s, "a number without digits after its point");
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
	{
		bool		neg = false;

		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			neg = *s->p++ == '-';
		if (!is_digit(s))
			return fault(s, "a number without digits in its exponent");
		for (; is_digit(s); s->p++)
			if (exp <= NUMERIC_MAX_EXPONENT)
				exp = exp * 10 + (*s->p - '0');
		if (neg)
			exp = -exp;
	}
	if (!numeric_fits(ip, ilen, fp, flen, exp))
	{
		s->p = at;
		return fault(s, "a number out of the range of numeric");
	}
	return true;
}

/* The 4 hex digits at p, or -1. */
static long
hex4(strict *s)
{
	long		v = 0;

	if (s->end - s->p < 4)
		return -1;
	for (int i = 0; i < 4; i++)
	{
		int			c = s->p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	s->p += 4;
	return v;
}

/* p is after the backslash. */
static bool
strict_escape(strict *s)
{
	long		u;

	if (s->p >= s->end)
		return fault(s, "an unterminated string");
	if (strchr("\"\\/bfnrt", *s->p) != NULL && *s->p != '\0')
	{
		s->p++;
		return true;
	}
	if (*s->p++ != 'u' || (u = hex4(s)) < 0)
		return fault(s, "an invalid escape in a string");
	if (u == 0)
		return fault(s, "\\u0000 in a string");
	if (u >= 0xdc00 && u <= 0xdfff)
		return fault(s, "an unpaired UTF-16 surrogate escape in a string");
	if (u >= 0xd800 && u <= 0xdbff)
	{
		if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
			return fault(s, "an unpaired UTF-16 surrogate escape in a string");
		s->p += 2;
		u = hex4(s);
		if (u < 0xdc00 || u > 0xdfff)
			return fault(s, "an unpaired UTF-16 surrogate escape in a string");
	}
	return true;
}

/* The length of the valid UTF-8 sequence at p[0..n) (n >= 1), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t		len;
	unsigned char lo = 0x80;
	unsigned char hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
	{
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;	/* not overlong */
		hi = c == 0xed ? 0x9f : 0xbf;	/* not a surrogate */
	}
	else if (c >= 0xf0 && c <= 0xf4)
	{
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;	/* not overlong */
		hi = c == 0xf4 ? 0x8f : 0xbf;	/* not beyond U+10FFFF */
	}
	else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

static bool
strict_string(strict *s)
{
	for (s->p++; s->p < s->end;)
	{
		unsigned char c = *s->p;
		size_t		len;

		if (c == '"')
		{
			s->p++;
			return true;
		}
		if (c < 0x20)
			return fault(s, "a control character in a string");
		if (c == '\\')
		{
			s->p++;
			if (!strict_escape(s))
				return false;
			continue;
		}
		if ((len = utf8_len(s->p, (size_t) (s->end - s->p))) == 0)
			return fault(s, "invalid UTF-8 in a string");
		s->p += len;
	}
	return fault(s, "an unterminated string");
}

static bool strict_value(strict *s, int depth);

/* An array or an object; p is at its bracket. */
static bool
strict_container(strict *s, int depth)
{
	unsigned char close = *s->p == '{' ? '}' : ']';

	if (depth >= FX_JSON_MAX_DEPTH)
		return fault(s, "arrays or objects nested too deeply");
	s->p++;
	strict_ws(s);
	if (s->p < s->end && *s->p == close)
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		if (close == '}')
		{
			if (s->p >= s->end || *s->p != '"')
				return fault(s, "an object member without a string key");
			if (!strict_string(s))
				return false;
			strict_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return fault(s, "an object member without a colon");
			s->p++;
		}
		if (!strict_value(s, depth + 1))
			return false;
		strict_ws(s);
		if (s->p < s->end && *s->p == ',')
		{
			s->p++;
			strict_ws(s);
			continue;
		}
		if (s->p < s->end && *s->p == close)
		{
			s->p++;
			return true;
		}
		return fault(s, close == '}' ? "an object not closed where it should be" :
					 "an array not closed where it should be");
	}
}

static bool
strict_word(strict *s, const char *word)
{
	size_t		len = strlen(word);

	if ((size_t) (s->end - s->p) < len || memcmp(s->p, word, len) != 0)
		return fault(s, "an unexpected character");
	s->p += len;
	return true;
}

static bool
strict_value(strict *s, int depth)
{
	strict_ws(s);
	if (s->p >= s->end)
		return fault(s, "the text ends where a value should be");
	switch (*s->p)
	{
		case '{':
		case '[':
			return strict_container(s, depth);
		case '"':
			return strict_string(s);
		case 't':
			return strict_word(s, "true");
		case 'f':
			return strict_word(s, "false");
		case 'n':
			return strict_word(s, "null");
		default:
			if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
				return strict_number(s);
			if (*s->p < 0x20)
				return fault(s, "a control character outside a string");
			return fault(s, "an unexpected character");
	}
}

const char *
fx_json_check(const char *json, size_t n, size_t *at)
{
	strict		s;

	s.start = s.p = (const unsigned char *) json;
	s.end = s.start + n;
	s.why = NULL;
	if (strict_value(&s, 0))
	{
		strict_ws(&s);
		if (s.p < s.end)
			s.why = *s.p < 0x20 ? "a control character outside a string" :
				"text after the value";
	}
	*at = (size_t) (s.p - s.start);
	return s.why;
}

/* ---------------------------------------------------------------------
 * Log lines and messages as UTF-8
 * --------------------------------------------------------------------- */

char *
fx_utf8_clean(const char *text, size_t n)
{
	const unsigned char *p = (const unsigned char *) text;
	char	   *out = fx_xmalloc(n * 3 + 1);	/* a byte becomes at most 3 */
	size_t		o = 0;

	for (size_t i = 0; i < n;)
	{
		size_t		len = p[i] == 0 ? 0 : utf8_len(p + i, n - i);

		if (len == 0)
		{
			memcpy(out + o, "\xef\xbf\xbd", 3);	/* U+FFFD */
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
	return out;
}

/* ---------------------------------------------------------------------
 * Finding values in valid JSON
 * --------------------------------------------------------------------- */

/* Whitespace as cJSON skips it: every byte up to ' '. */
static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (unsigned char) *p <= ' ')
		p++;
	return p;
}

/* p is at '"': the character after the closing quote. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p + 1 : end;
}

/* The character after the value starting at p. */
static const char *
skip_value(const char *p, const char *end)
{
	int			depth = 0;

	if (p < end && *p == '"')
		return skip_string(p, end);
	if (p < end && *p != '{' && *p != '[')
	{
		while (p < end && (unsigned char) *p > ' ' && !strchr(",}]", *p))
			p++;
		return p;
	}
	while (p < end)
	{
		if (*p == '"')
		{
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
		{
			if (--depth == 0)
				return p + 1;
		}
		p++;
	}
	return end;
}

const char *
fx_json_member(const char *json, size_t n, const char *key, size_t *len)
{
	const char *end = json + n;
	const char *p = skip_ws(json, end);
	size_t		klen = strlen(key);

	if (p >= end || *p != '{')
		return NULL;
	p++;
	for (;;)
	{
		const char *k;
		const char *v;
		bool		match;

		p = skip_ws(p, end);
		if (p >= end || *p != '"')
			return NULL;
		k = p + 1;
		p = skip_string(p, end);
		/* keys are compared as written: fx's keys need no escapes */
		match = (size_t) (p - 1 - k) == klen && memcmp(k, key, klen) == 0;

		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			return NULL;
		v = skip_ws(p + 1, end);
		p = skip_value(v, end);
		if (match)
		{
			*len = (size_t) (p - v);
			return v;
		}
		p = skip_ws(p, end);
		if (p >= end || *p != ',')
			return NULL;
		p++;
	}
}

int
fx_json_elements(const char *json, size_t n, const char **starts, size_t *lens, int max)
{
	const char *end = json + n;
	const char *p = skip_ws(json, end);
	int			count = 0;

	if (p >= end || *p != '[')
		return -1;
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		return 0;
	while (p < end)
	{
		const char *v = p;

		p = skip_value(v, end);
		if (count < max)
		{
			starts[count] = v;
			lens[count] = (size_t) (p - v);
		}
		count++;
		p = skip_ws(p, end);
		if (p >= end || *p != ',')
			break;
		p = skip_ws(p + 1, end);
	}
	return count;
}

cJSON *
fx_json_raw(const char *text, size_t len)
{
	char	   *copy = fx_xmalloc(len + 1);
	cJSON	   *raw;

	memcpy(copy, text, len);
	copy[len] = '\0';
	raw = cJSON_CreateRaw(copy);
	free(copy);
	return raw;
}

cJSON *
fx_json_int(long long v)
{
	char		buf[24];

	snprintf(buf, sizeof(buf), "%lld", v);
	return cJSON_CreateRaw(buf);
}

cJSON *
fx_json_ms(double ms)
{
	long long	us = ms > 0 ? (long long) (ms * 1000 + 0.5) : 0;
	char		buf[32];

	snprintf(buf, sizeof(buf), "%lld.%03lld", us / 1000, us % 1000);
	return cJSON_CreateRaw(buf);
}

/* ---------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

/* Members the worker reads as text only (fx_json_member), never as cJSON. */
static bool
text_member(const char *key, size_t len)
{
	static const char *const names[] = {"value", "output", "args", "payload", NULL};

	for (int i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == len && memcmp(names[i], key, len) == 0)
			return true;
	return false;
}

typedef struct buf
{
	char	   *data;
	size_t		len;
} buf;

static void
put(buf *b, const char *text, size_t n)
{
	memcpy(b->data + b->len, text, n);	/* never longer than the message */
	b->len += n;
}

/* A value of the skeleton: a scalar as written, an empty array or object. */
static void
put_shallow(buf *b, const char *v, const char *end)
{
	if (*v == '[')
		put(b, "[]", 2);
	else if (*v == '{')
		put(b, "{}", 2);
	else
		put(b, v, (size_t) (end - v));
}

/* The elements of the array v[0..end), each shallow; false if too many. */
static bool
put_elements(buf *b, const char *v, const char *end)
{
	const char *p = skip_ws(v + 1, end);
	int			count = 0;

	put(b, "[", 1);
	while (p < end && *p != ']')
	{
		const char *e = skip_value(p, end);

		if (++count > FX_JSON_MAX_PARAMS)
			return false;
		if (count > 1)
			put(b, ",", 1);
		put_shallow(b, p, e);
		p = skip_ws(e, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	put(b, "]", 1);
	return true;
}

cJSON *
fx_json_parse_message(const char *json, size_t n, const char **why)
{
	const char *end = json + n;
	const char *p = skip_ws(json, end);
	buf			b;
	cJSON	   *msg = NULL;

	*why = NULL;
	if (p >= end || *p != '{')
		return NULL;
	/* "null" for a one-digit value makes a member longer, never twice */
	b.data = fx_xmalloc(2 * n + 16);
	b.len = 0;
	put(&b, "{", 1);
	p = skip_ws(p + 1, end);
	while (p < end && *p == '"')
	{
		const char *k = p;
		size_t		klen;
		const char *v;
		const char *ve;

		p = skip_string(p, end);
		klen = (size_t) (p - k);	/* with its quotes */
		if (b.len > 1)
			put(&b, ",", 1);
		put(&b, k, klen);
		put(&b, ":", 1);
		p = skip_ws(p, end);
		if (p >= end || *p != ':')
			goto done;			/* not valid JSON: checked before */
		v = skip_ws(p + 1, end);
		if (v >= end)
			goto done;
		ve = skip_value(v, end);
		if (klen >= 2 && text_member(k + 1, klen - 2))
			put(&b, "null", 4);
		else if (*v == '[' && klen == 8 && memcmp(k, "\"params\"", 8) == 0)
		{
			if (!put_elements(&b, v, ve))
			{
				*why = "more than 65535 elements in \"params\"";
				goto done;
			}
		}
		else
			put_shallow(&b, v, ve);
		p = skip_ws(ve, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	put(&b, "}", 1);
	msg = cJSON_ParseWithLength(b.data, b.len);
done:
	free(b.data);
	return msg;
}
