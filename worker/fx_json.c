/*
 * fx_json.c: find values in JSON text without converting them.
 *
 * The input has been parsed by cJSON already, so it is valid JSON; these
 * only skip over it: strings (with their escapes), nested objects and
 * arrays, and scalars up to the next delimiter.
 */
#include <stdlib.h>
#include <string.h>

#include "fx_json.h"
#include "fx_log.h"

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
