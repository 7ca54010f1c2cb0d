/*
 * fx_secret.h: a function's secrets, and keeping them out of what the
 * worker stores.
 *
 * The secrets granted to a function (fx_secret_grant, fx.secrets_for)
 * reach its sandbox as files /run/secrets/NAME (fx_sandbox.c), never its
 * command line or environment.  The worker keeps each function's set in a
 * cache filled on the worker's database session and emptied by NOTIFY
 * fx_secret.  A set is immutable and reference-counted: an attempt, the
 * session process it runs in and the cache share it.
 *
 * Redaction: every value of 4 bytes or more, and every line of 4 bytes
 * or more of a value that has several, is replaced with "[redacted]" in
 * the log lines, errors and details stored for an attempt, and in the
 * worker's own log lines about it (fx_log).  Results are not redacted.
 */
#ifndef FX_SECRET_H
#define FX_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx_db.h"

#define FX_SECRET_MAX_VALUE (64 * 1024)
#define FX_SECRET_MAX_NAME 128
#define FX_SECRET_MIN_REDACT 4	/* shorter values are not redacted */

/*
 * A line longer than the log's line buffer is stored in pieces: at each
 * cut the piece keeps back (for the next piece) the start of a value of up
 * to this many bytes; longer values are redacted piece by piece.
 */
#define FX_SECRET_KEEP_MAX 4000

typedef struct fx_secret
{
	char	   *name;
	char	   *value;
	size_t		len;
} fx_secret;

typedef struct fx_secrets fx_secrets;

/* Carried from one piece of a long line to the next (zeroed: nothing). */
typedef struct fx_redact_carry
{
	int			needle;
	size_t		state;			/* bytes of that value matched so far */
} fx_redact_carry;

/* A set from (name, value) pairs; values may hold any byte but NUL. */
fx_secrets *fx_secrets_new(int n, const char *const *names, const char *const *values,
						   const size_t *lens);
fx_secrets *fx_secrets_ref(fx_secrets *s);
void		fx_secrets_unref(fx_secrets *s);
int			fx_secrets_count(const fx_secrets *s);
const fx_secret *fx_secrets_get(const fx_secrets *s, int i);

/* Same names and values (NULL is the empty set). */
bool		fx_secrets_equal(const fx_secrets *a, const fx_secrets *b);

/* The cache forgot it (a secret changed): attempts not started refetch. */
bool		fx_secrets_stale(const fx_secrets *s);

/* Whether name is a valid secret name (and so a safe file name). */
bool		fx_secret_name_ok(const char *name);

/*
 * text[0..n) with every value replaced, and a trailing start of one (a
 * text cut short), as a new NUL-terminated string in *out, its length in
 * *outn; false (and nothing allocated) if there is nothing to replace.
 */
bool		fx_secrets_redact(const fx_secrets *s, const char *text, size_t n,
							  char **out, size_t *outn);

/* The same, for a NUL-terminated string; NULL if nothing to replace. */
char	   *fx_secrets_redact_str(const fx_secrets *s, const char *text);

/*
 * Pieces of an over-long line: fx_secrets_keep says how many bytes at the
 * end of buf[0..len) to keep for the next piece (at most len / 2);
 * fx_secrets_redact_piece redacts a piece, continuing a long value that
 * the previous piece ended in (carry) and, if cut_after, redacting the
 * start of a long value it ends in and setting carry for the next piece.
 */
size_t		fx_secrets_keep(const fx_secrets *s, const char *buf, size_t len);
bool		fx_secrets_redact_piece(const fx_secrets *s, const char *text, size_t n,
									fx_redact_carry *carry, bool cut_after,
									char **out, size_t *outn);

/*
 * The secrets of the attempts alive (bound when an attempt gets its set,
 * unbound when it is freed): fx_log redacts its lines about them.
 */
void		fx_secret_bind(int64_t invocation, fx_secrets *s);
void		fx_secret_unbind(int64_t invocation, fx_secrets *s);

/* ---------------------------------------------------------------------
 * The worker's cache: function name -> its set, from fx.secrets_for().
 * --------------------------------------------------------------------- */

/* set is a new reference (the callee's), or NULL with why if it failed. */
typedef void (*fx_secret_cb) (void *arg, fx_secrets *set, const char *why);

typedef struct fx_secret_entry fx_secret_entry;

typedef struct fx_secret_cache
{
	fx_db	   *db;
	fx_secret_entry *entries;
	int			nentries;
} fx_secret_cache;

void		fx_secret_cache_init(fx_secret_cache *c, fx_db *db);

/* cb gets fn's secrets: at once if they are cached, else after a fetch. */
void		fx_secret_cache_get(fx_secret_cache *c, const char *fn, fx_secret_cb cb,
								void *arg);

/* fn's secrets changed (NOTIFY fx_secret): fetch them again next time. */
void		fx_secret_cache_forget(fx_secret_cache *c, const char *fn);

/*
 * (Re)connected: notifications may have been missed, so forget every
 * set, and send the fetches that were waiting.
 */
void		fx_secret_cache_reconnected(fx_secret_cache *c);

/* Hand every waiting arg to drop (stopping), without their secrets. */
void		fx_secret_cache_drop_waiters(fx_secret_cache *c, void (*drop) (void *arg));

void		fx_secret_cache_free(fx_secret_cache *c);

#endif							/* FX_SECRET_H */
