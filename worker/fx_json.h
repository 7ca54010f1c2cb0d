/*
 * fx_json.h: JSON from functions, checked as PostgreSQL reads it and
 * passed on as written.
 *
 * cJSON holds numbers as doubles, so a bigint or a long numeric passing
 * through it would change (2^53 + 1 becomes 2^53).  The worker passes the
 * values it does not need to look into (results, state, parameters) on as
 * the text the function wrote.  cJSON is also more lenient than JSON
 * (01, raw control bytes, anything after the value), so that text is
 * first checked with fx_json_check, which takes exactly what jsonb takes:
 * one text jsonb refuses would fail the whole batch of finished attempts
 * it is sent to PostgreSQL with.  The other functions find values in text
 * that passed fx_json_check (or at least cJSON).
 */
#ifndef FX_JSON_H
#define FX_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Deepest nesting of arrays and objects taken (cJSON's limit too). */
#define FX_JSON_MAX_DEPTH 1000

/* Most elements of "params" in a message (PostgreSQL's limit). */
#define FX_JSON_MAX_PARAMS 65535

/*
 * NULL if json[0..n) is one JSON value, with only JSON whitespace around
 * it, that PostgreSQL's jsonb accepts: RFC 8259 in UTF-8, no \u0000 and
 * no unpaired surrogate escape, every number within numeric's range, at
 * most FX_JSON_MAX_DEPTH deep.  Else what is wrong ("\u0000 in a
 * string"), and *at says where (a byte offset).
 */
const char *fx_json_check(const char *json, size_t n, size_t *at);

/*
 * The object json[0..n), which passed fx_json_check, parsed by cJSON as
 * far as the worker reads messages with cJSON: the members that are
 * passed on as text ("value", "output", "args", "payload") are null in
 * it, other arrays and objects are empty, except that the elements of
 * "params" are there (arrays and objects among them empty).  So a large
 * value costs no tree of cJSON items.  NULL if json is not an object, or
 * if "params" has more than FX_JSON_MAX_PARAMS elements (*why says so).
 */
cJSON	   *fx_json_parse_message(const char *json, size_t n, const char **why);

/*
 * text[0..n) as a NUL-terminated string of valid UTF-8, for log lines and
 * error messages: NUL bytes and invalid sequences become U+FFFD.
 */
char	   *fx_utf8_clean(const char *text, size_t n);

/* The value of member key of the object json[0..n), as text; NULL if absent. */
const char *fx_json_member(const char *json, size_t n, const char *key, size_t *len);

/*
 * The elements of the array json[0..n): up to max of them, as texts.
 * Returns how many there are, or -1 if json is not an array.
 */
int			fx_json_elements(const char *json, size_t n, const char **starts,
							 size_t *lens, int max);

/* A raw cJSON item holding text[0..len) (valid JSON). */
cJSON	   *fx_json_raw(const char *text, size_t len);

/*
 * Numbers for messages the worker writes, as raw items printed with
 * integer arithmetic: cJSON prints a number beyond int's range (an id, a
 * time in ms since the epoch) or with a fraction by two sprintf calls and
 * an sscanf, a tenth of the worker's time per invocation.  fx_json_ms
 * keeps microseconds ("12.345").
 */
cJSON	   *fx_json_int(long long v);
cJSON	   *fx_json_ms(double ms);

#endif							/* FX_JSON_H */
