/*
 * fx_cronparse.h: the cron specs of schedules, in plain C.
 *
 * The parser and the tick search behind fx.cron_next and fx.cron_prev
 * (extension/fx_cron.c, where the spec language is described), without
 * PostgreSQL, so that a fuzz target can run them (fuzz/fuzz_cron.c).
 * Nothing here allocates; a failure is a status, and for a spec that is
 * not valid a message in the caller's buffer.  Times are PostgreSQL's
 * timestamps: microseconds since 2000-01-01 00:00 UTC, within its range
 * (4714-11-24 BC to 294276 AD).
 */
#ifndef FX_CRONPARSE_H
#define FX_CRONPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FX_CRON_MAX_SPEC 200	/* bytes in a spec */
#define FX_CRON_ERROR_LEN 512	/* room for any message about a spec */

/* PostgreSQL's timestamp range: FX_CRON_MIN_TIME <= t < FX_CRON_END_TIME */
#define FX_CRON_MIN_TIME INT64_C(-211813488000000000)
#define FX_CRON_END_TIME INT64_C(9223371331200000000)

#define FX_CRON_HINT \
	"A cron spec is five fields: minute (0-59), hour (0-23), day of month " \
	"(1-31), month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT, 0 and " \
	"7 are Sunday), each *, N, N-M or a comma-separated list of them, each " \
	"with an optional /step; or @hourly, @daily, @weekly, @monthly or " \
	"@yearly; or @every and an interval such as 30s, 5m, 1h30m or 1d."

typedef enum fx_cron_status
{
	FX_CRON_OK = 0,
	FX_CRON_INVALID,			/* not a spec: the message says why */
	FX_CRON_TOO_LONG,			/* more than FX_CRON_MAX_SPEC bytes */
	FX_CRON_NEVER,				/* no date matches its day and month fields */
	FX_CRON_OUT_OF_RANGE		/* the tick is outside the timestamp range */
} fx_cron_status;

/* A parsed spec: one bit per matching value of each field. */
typedef struct fx_cron
{
	int64_t		every;			/* @every: the period in microseconds; else 0 */
	uint64_t	minutes;		/* bits 0-59 */
	uint64_t	hours;			/* bits 0-23 */
	uint64_t	mdays;			/* bits 1-31 */
	uint64_t	months;			/* bits 1-12 */
	uint64_t	wdays;			/* bits 0-6, Sunday = 0 */
	bool		mday_star;		/* the field starts with "*" */
	bool		wday_star;
} fx_cron;

/*
 * Parse SPEC (NUL-terminated) into *c.  FX_CRON_INVALID or
 * FX_CRON_TOO_LONG with the message in err[0..errlen), e.g.
 * "invalid cron "0 0 32 * *": day-of-month 32 is out of range 1-31".
 */
fx_cron_status fx_cronparse_spec(const char *spec, fx_cron *c, char *err, size_t errlen);

/* The first tick strictly after t, in *tick. */
fx_cron_status fx_cronparse_next(const fx_cron *c, int64_t t, int64_t *tick);

/* The last tick at or before t, in *tick. */
fx_cron_status fx_cronparse_prev(const fx_cron *c, int64_t t, int64_t *tick);

/* Is t a tick of c? */
bool		fx_cronparse_matches(const fx_cron *c, int64_t t);

#endif							/* FX_CRONPARSE_H */
