/*
 * fx_json.h: the text of a JSON value inside a message, as written.
 *
 * cJSON holds numbers as doubles, so a bigint or a long numeric passing
 * through it would change (2^53 + 1 becomes 2^53).  The worker passes the
 * values it does not need to look into (results, state, parameters) on as
 * the text the function wrote; these find that text in a message that
 * cJSON has already validated.
 */
#ifndef FX_JSON_H
#define FX_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

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

#endif							/* FX_JSON_H */
