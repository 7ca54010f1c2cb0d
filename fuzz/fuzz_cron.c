/*
 * fuzz_cron.c: libFuzzer target for the cron specs of schedules.
 *
 * extension/fx_cronparse.c is what fx.cron_next and fx.cron_prev run,
 * built here without PostgreSQL.  The input's first 8 bytes are a time
 * (big-endian; brought into PostgreSQL's timestamp range, its first byte
 * choosing the range's start, its end, or anywhere), the rest the spec (up
 * to a NUL).  Besides the sanitizers it checks:
 * - a spec is taken, or refused with a message "invalid cron ...",
 *   NUL-terminated in its buffer;
 * - a spec taken holds only what the language allows (digits, letters,
 *   * / , - and white space, one @ first), and its value sets only values
 *   of their fields; written out again as lists of those values it parses
 *   to the same sets;
 * - next(t) > t and prev(t) <= t, both ticks of the spec, with no tick
 *   between them and t: prev(next(t) - 1) <= t and next(prev(t)) > t,
 *   and, where they are less than two days apart, no minute between them
 *   is a tick; prev of a tick is that tick.  What is a tick is decided
 *   here, from the C library's calendar (gmtime_r), not by the parser's
 *   own day arithmetic, and fx_cronparse_matches must agree;
 * - the search fails only for a spec with no date ("never") or at the end
 *   of the timestamp range, and the same way every time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fx/fx_cronparse.h"

#define SECOND INT64_C(1000000)
#define MINUTE INT64_C(60000000)
#define UNIX_EPOCH_SECS INT64_C(946684800)	/* 2000-01-01 in Unix time */
#define SCAN_MINUTES (2 * 1440)

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *spec, int64_t t)
			__attribute__((noreturn));

static void
fail(const char *what, const char *spec, int64_t t)
{
	fprintf(stderr, "fuzz_cron: %s\n  spec: \"%s\"\n  t: %lld\n", what, spec, (long long) t);
	abort();
}

/* The time in the input's first 8 bytes, within the timestamp range. */
static int64_t
input_time(const uint8_t *d)
{
	uint64_t	u = 0;
	uint64_t	span = (uint64_t) FX_CRON_END_TIME - (uint64_t) FX_CRON_MIN_TIME;

	for (int i = 0; i < 8; i++)
		u = u << 8 | d[i];
	switch (d[0] % 8)
	{
		case 0:					/* the first 11 days */
			return FX_CRON_MIN_TIME + (int64_t) ((u >> 8) % (UINT64_C(1) << 50));
		case 1:					/* the last 11 days */
			return FX_CRON_END_TIME - 1 - (int64_t) ((u >> 8) % (UINT64_C(1) << 50));
		case 2:					/* on a minute, within 2000 years of 2000 */
			return ((int64_t) ((u >> 8) % (UINT64_C(1) << 31)) - (INT64_C(1) << 30)) * MINUTE;
		default:				/* modulo 2^64: the range's start plus up to its span */
			return (int64_t) ((uint64_t) FX_CRON_MIN_TIME + u % span);
	}
}

static int64_t
floor_mod(int64_t a, int64_t b)
{
	return (a % b + b) % b;
}

/*
 * Is t a tick of c?  The five fields from gmtime_r; @every counted from
 * the Unix epoch.
 */
static bool
ref_matches(const fx_cron *c, int64_t t)
{
	time_t		secs;
	struct tm	tm;
	bool		by_mday;
	bool		by_wday;

	if (c->every)
		return floor_mod(floor_mod(t, c->every) + floor_mod(UNIX_EPOCH_SECS * SECOND, c->every),
						 c->every) == 0;
	if (floor_mod(t, MINUTE) != 0)
		return false;
	secs = (time_t) ((t - floor_mod(t, SECOND)) / SECOND + UNIX_EPOCH_SECS);
	if (gmtime_r(&secs, &tm) == NULL)
		abort();
	by_mday = (c->mdays >> tm.tm_mday) & 1;
	by_wday = (c->wdays >> tm.tm_wday) & 1;
	return ((c->months >> (tm.tm_mon + 1)) & 1) && ((c->hours >> tm.tm_hour) & 1) &&
		((c->minutes >> tm.tm_min) & 1) &&
		(c->mday_star || c->wday_star ? by_mday && by_wday : by_mday || by_wday);
}

/* A tick by the reference, and by the parser's own test. */
static bool
matches(const fx_cron *c, int64_t t, const char *spec)
{
	bool		ref = ref_matches(c, t);

	if (fx_cronparse_matches(c, t) != ref)
		fail("fx_cronparse_matches disagrees with the calendar", spec, t);
	return ref;
}

/* No minute in (from, to) is a tick, when they are close. */
static void
check_gap(const fx_cron *c, int64_t from, int64_t to, const char *spec, int64_t t)
{
	int64_t		m;

	if (c->every || to - from > SCAN_MINUTES * MINUTE)
		return;
	for (m = from - floor_mod(from, MINUTE) + MINUTE; m < to; m += MINUTE)
		if (ref_matches(c, m))
			fail("the search skipped a tick", spec, t);
}

/* Only the spec language's characters. */
static void
check_charset(const char *spec)
{
	const char *p = spec;

	while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
		p++;
	if (*p == '@')
		p++;
	for (; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= 'A' && *p <= 'Z') || strchr("*/,- \t\n\v\f\r", *p) != NULL))
			fail("a spec with a character outside the language was taken", spec, 0);
}

/* The values of bits, lo to hi, as "a,b,c" (or "*" if star). */
static void
put_list(char *out, size_t n, uint64_t bits, int lo, int hi, bool star)
{
	size_t		len = strlen(out);
	bool		first = true;

	if (star)
	{
		snprintf(out + len, n - len, "* ");
		return;
	}
	for (int v = lo; v <= hi; v++)
		if (bits & (UINT64_C(1) << v))
		{
			len += snprintf(out + len, n - len, "%s%d", first ? "" : ",", v);
			first = false;
		}
	snprintf(out + len, n - len, " ");
}

static bool
only(uint64_t bits, int lo, int hi)
{
	uint64_t	mask = (hi >= 63 ? ~UINT64_C(0) : (UINT64_C(1) << (hi + 1)) - 1) &
		~((UINT64_C(1) << lo) - 1);

	return (bits & ~mask) == 0;
}

/* The value sets, and the same sets when written out as lists. */
static void
check_sets(const fx_cron *c, const char *spec)
{
	char		again[1024] = "";
	char		err[FX_CRON_ERROR_LEN];
	fx_cron		d;

	if (c->every)
	{
		if (c->every < 1000000 || c->every > INT64_C(366) * 86400 * 1000000 ||
			c->every % 1000000 != 0)
			fail("an @every period outside 1 s to 366 d, or not whole seconds", spec, 0);
		return;
	}
	if (!only(c->minutes, 0, 59) || !only(c->hours, 0, 23) || !only(c->mdays, 1, 31) ||
		!only(c->months, 1, 12) || !only(c->wdays, 0, 6))
		fail("a value set holds a value outside its field", spec, 0);
	if (!c->minutes || !c->hours || !c->mdays || !c->months || !c->wdays)
		fail("a field matches nothing", spec, 0);
	put_list(again, sizeof(again), c->minutes, 0, 59, false);
	put_list(again, sizeof(again), c->hours, 0, 23, false);
	put_list(again, sizeof(again), c->mdays, 1, 31, c->mday_star);
	put_list(again, sizeof(again), c->months, 1, 12, false);
	put_list(again, sizeof(again), c->wdays, 0, 6, c->wday_star);
	if (strlen(again) > FX_CRON_MAX_SPEC)
		return;					/* too long to say again */
	if (fx_cronparse_spec(again, &d, err, sizeof(err)) != FX_CRON_OK)
		fail("the sets written out as lists are refused", again, 0);
	if (d.minutes != c->minutes || d.hours != c->hours || d.months != c->months ||
		(!c->mday_star && d.mdays != c->mdays) || (!c->wday_star && d.wdays != c->wdays) ||
		d.mday_star != c->mday_star || d.wday_star != c->wday_star)
		fail("the sets written out as lists parse differently", spec, 0);
}

/* A search's status is one it may end in. */
static void
check_status(fx_cron_status st, const fx_cron *c, const char *spec, int64_t t)
{
	if (st == FX_CRON_OK || st == FX_CRON_OUT_OF_RANGE)
		return;
	if (st == FX_CRON_NEVER && !c->every)
		return;
	fail("a search ended in a status it cannot end in", spec, t);
}

static void
check_ticks(const fx_cron *c, const char *spec, int64_t t)
{
	int64_t		next = 0;
	int64_t		prev = 0;
	int64_t		x = 0;
	fx_cron_status sn = fx_cronparse_next(c, t, &next);
	fx_cron_status sp = fx_cronparse_prev(c, t, &prev);

	check_status(sn, c, spec, t);
	check_status(sp, c, spec, t);
	if ((sn == FX_CRON_NEVER) != (sp == FX_CRON_NEVER) &&
		sn != FX_CRON_OUT_OF_RANGE && sp != FX_CRON_OUT_OF_RANGE)
		fail("next and prev disagree on whether it ever fires", spec, t);
	if (sn == FX_CRON_OK)
	{
		if (next <= t || !matches(c, next, spec))
			fail("next(t) is not a tick after t", spec, t);
		check_gap(c, t, next, spec, t);
		if (fx_cronparse_prev(c, next - 1, &x) == FX_CRON_OK && x > t)
			fail("a tick between t and next(t)", spec, t);
		if (fx_cronparse_prev(c, next, &x) != FX_CRON_OK || x != next)
			fail("prev of a tick (next) is not that tick", spec, t);
	}
	if (sp == FX_CRON_OK)
	{
		if (prev > t || !matches(c, prev, spec))
			fail("prev(t) is not a tick at or before t", spec, t);
		check_gap(c, prev, t + 1, spec, t);
		if (fx_cronparse_next(c, prev, &x) == FX_CRON_OK && x <= t)
			fail("a tick between prev(t) and t", spec, t);
	}
	if (fx_cronparse_next(c, t, &x) != sn || (sn == FX_CRON_OK && x != next))
		fail("next is not the same twice", spec, t);
	(void) matches(c, t, spec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		spec[FX_CRON_MAX_SPEC + 64];
	char		err[FX_CRON_ERROR_LEN];
	size_t		n;
	int64_t		t;
	fx_cron		c;
	fx_cron_status st;

	if (size < 8)
		return 0;
	t = input_time(data);
	n = size - 8 < sizeof(spec) - 1 ? size - 8 : sizeof(spec) - 1;
	memcpy(spec, data + 8, n);
	spec[n] = '\0';
	memset(err, 'x', sizeof(err));
	st = fx_cronparse_spec(spec, &c, err, sizeof(err));
	if (st != FX_CRON_OK)
	{
		if (st != FX_CRON_INVALID && st != FX_CRON_TOO_LONG)
			fail("parsing ended in a status it cannot end in", spec, t);
		if (memchr(err, '\0', sizeof(err)) == NULL || strncmp(err, "invalid cron", 12) != 0)
			fail("a spec was refused without a message", spec, t);
		if ((st == FX_CRON_TOO_LONG) != (strlen(spec) > FX_CRON_MAX_SPEC))
			fail("a spec was refused as too long, or not", spec, t);
		return 0;
	}
	check_charset(spec);
	check_sets(&c, spec);
	check_ticks(&c, spec, t);
	return 0;
}
