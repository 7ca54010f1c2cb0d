/*
 * fx_cron.c: the cron specs of schedules.
 *
 * fx.cron_next(spec, after) is the first tick of spec strictly after
 * `after`, and fx.cron_prev(spec, at) the last tick at or before `at`, so
 * that cron_prev(spec, t) <= t < cron_next(spec, t).  Times are UTC.  A
 * spec is one of
 *
 *   five fields  minute hour day-of-month month day-of-week: each a list of
 *                *, N or N-M, each with an optional /step (N/step means
 *                N to the field's maximum); months JAN-DEC and days SUN-SAT
 *                by name, in any case; 0 and 7 are Sunday.  When both day
 *                fields are restricted (neither starts with *), a day
 *                matches if either field matches it; otherwise both must,
 *                as in Vixie cron and pg_cron.
 *   a macro      @hourly, @daily (@midnight), @weekly, @monthly, @yearly
 *                (@annually).
 *   @every D     D is 30s, 5m, 1h30m, 2d ... (whole seconds, 1 s to 366 d):
 *                the ticks are the multiples of D counted from the Unix
 *                epoch, so every worker computes the same ones.
 *
 * The search steps over whole months, days and hours that do not match and
 * gives up after 400 years: the Gregorian calendar repeats every 400 years
 * (146097 days, a whole number of weeks), so a spec with no tick in that
 * window has none at all ("0 0 30 2 *").
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "fx.h"

PG_FUNCTION_INFO_V1(fx_cron_next);
PG_FUNCTION_INFO_V1(fx_cron_prev);

#define MAX_SPEC_LEN 200
#define MAX_EVERY_SECS (366 * SECS_PER_DAY)
#define SEARCH_DAYS 146097		/* 400 Gregorian years */
#define MINS_PER_DAY (HOURS_PER_DAY * MINS_PER_HOUR)
#define BIT(n) (UINT64CONST(1) << (n))

/* A parsed spec: one bit per matching value of each field. */
typedef struct CronSpec
{
	int64		every;			/* @every: the period in microseconds; else 0 */
	uint64		minutes;		/* bits 0-59 */
	uint64		hours;			/* bits 0-23 */
	uint64		mdays;			/* bits 1-31 */
	uint64		months;			/* bits 1-12 */
	uint64		wdays;			/* bits 0-6, Sunday = 0 */
	bool		mday_star;		/* the field starts with "*" */
	bool		wday_star;
} CronSpec;

typedef struct CronField
{
	const char *name;			/* for messages */
	int			lo;
	int			hi;
	const char *const *names;	/* names of lo, lo + 1, ...; or NULL */
} CronField;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const day_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const CronField fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day-of-month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day-of-week", 0, 7, day_names},
};

static const struct
{
	const char *name;
	const char *spec;
}			macros[] = {
	{"hourly", "0 * * * *"},
	{"daily", "0 0 * * *"},
	{"midnight", "0 0 * * *"},
	{"weekly", "0 0 * * 0"},
	{"monthly", "0 0 1 * *"},
	{"yearly", "0 0 1 1 *"},
	{"annually", "0 0 1 1 *"},
};

#define CRON_HINT \
	"A cron spec is five fields: minute (0-59), hour (0-23), day of month " \
	"(1-31), month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT, 0 and " \
	"7 are Sunday), each *, N, N-M or a comma-separated list of them, each " \
	"with an optional /step; or @hourly, @daily, @weekly, @monthly or " \
	"@yearly; or @every and an interval such as 30s, 5m, 1h30m or 1d."

/* An invalid spec: "invalid cron "SPEC": WHY". */
#define BAD_SPEC(spec, ...) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), \
			 errmsg("invalid cron \"%s\": %s", (spec), psprintf(__VA_ARGS__)), \
			 errhint(CRON_HINT)))

/*
 * Parsing
 */

/* The number at *p: its digits are consumed; above 99999 it is 99999. */
static int
take_number(const char **p)
{
	int			n = 0;

	while (isdigit((unsigned char) **p))
	{
		if (n < 99999)
			n = Min(n * 10 + (**p - '0'), 99999);
		(*p)++;
	}
	return n;
}

/* A value of field f at *p, a number or a name, in the item (item, len). */
static int
take_value(const char *spec, const CronField *f, const char **p, const char *item, int len)
{
	const char *start = *p;
	int			v;

	if (isdigit((unsigned char) **p))
	{
		v = take_number(p);
		if (v < f->lo || v > f->hi)
			BAD_SPEC(spec, "%s %.*s is out of range %d-%d",
					 f->name, (int) (*p - start), start, f->lo, f->hi);
		return v;
	}
	while (isalpha((unsigned char) **p))
		(*p)++;
	if (*p == start && start != item)
		BAD_SPEC(spec, "%s \"%.*s\" is not valid", f->name, len, item);
	if (f->names && *p - start == 3)
	{
		for (v = 0; f->names[v]; v++)
			if (pg_strncasecmp(start, f->names[v], 3) == 0)
				return f->lo + v;
	}
	if (f->names)
		BAD_SPEC(spec, "%s \"%.*s\" is not a number or a %s name",
				 f->name, len, item, f == &fields[3] ? "month" : "day");
	BAD_SPEC(spec, "%s \"%.*s\" is not a number", f->name, len, item);
	return 0;					/* not reached */
}

/* One item of a list: *, N or N-M, with an optional /step. */
static uint64
parse_item(const char *spec, const CronField *f, const char *item, int len)
{
	const char *p = item;
	const char *end = item + len;
	int			lo;
	int			hi;
	int			step = 1;
	uint64		bits = 0;

	if (len == 0)
		BAD_SPEC(spec, "%s has an empty list item", f->name);
	if (*p == '*')
	{
		lo = f->lo;
		hi = f->hi;
		p++;
	}
	else
	{
		lo = hi = take_value(spec, f, &p, item, len);
		if (p < end && *p == '-')
		{
			p++;
			hi = take_value(spec, f, &p, item, len);
			if (hi < lo)
				BAD_SPEC(spec, "%s range \"%.*s\" runs backwards", f->name, len, item);
		}
		else if (p < end && *p == '/')
			hi = f->hi;
	}
	if (p < end && *p == '/')
	{
		const char *s = ++p;

		if (!isdigit((unsigned char) *p))
			BAD_SPEC(spec, "%s \"%.*s\" has no step after \"/\"", f->name, len, item);
		step = take_number(&p);
		if (step < 1 || step > f->hi - f->lo + 1)
			BAD_SPEC(spec, "%s step %.*s is out of range 1-%d",
					 f->name, (int) (p - s), s, f->hi - f->lo + 1);
	}
	if (p != end)
		BAD_SPEC(spec, "%s \"%.*s\" is not valid", f->name, len, item);
	for (int v = lo; v <= hi; v += step)
		bits |= BIT(v);
	return bits;
}

/* A field: a comma-separated list of items. */
static uint64
parse_field(const char *spec, const CronField *f, const char *text, int len)
{
	uint64		bits = 0;
	const char *item = text;
	const char *end = text + len;

	for (;;)
	{
		const char *comma = memchr(item, ',', end - item);
		const char *stop = comma ? comma : end;

		bits |= parse_item(spec, f, item, stop - item);
		if (comma == NULL)
			return bits;
		item = comma + 1;
	}
}

/* The five fields of text (spec is the whole spec, for messages). */
static void
parse_fields(const char *spec, const char *text, CronSpec *c)
{
	const char *start[5];
	int			len[5];
	int			n = 0;
	const char *p = text;
	uint64		bits[5];

	while (*p)
	{
		const char *s;

		while (isspace((unsigned char) *p))
			p++;
		if (*p == '\0')
			break;
		s = p;
		while (*p && !isspace((unsigned char) *p))
			p++;
		if (n < 5)
		{
			start[n] = s;
			len[n] = p - s;
		}
		n++;
	}
	if (n != 5)
		BAD_SPEC(spec, "it has %d field%s, not 5 (minute hour day-of-month month day-of-week)",
				 n, n == 1 ? "" : "s");
	for (int i = 0; i < 5; i++)
		bits[i] = parse_field(spec, &fields[i], start[i], len[i]);
	c->minutes = bits[0];
	c->hours = bits[1];
	c->mdays = bits[2];
	c->months = bits[3];
	c->wdays = bits[4];
	if (c->wdays & BIT(7))
		c->wdays = (c->wdays & ~BIT(7)) | BIT(0);	/* 7 is Sunday too */
	c->mday_star = start[2][0] == '*';
	c->wday_star = start[4][0] == '*';
}

/* "@every 1h30m": the sum of whole numbers with units s, m, h and d. */
static void
parse_every(const char *spec, const char *text, CronSpec *c)
{
	const char *p;
	int64		secs = 0;

	while (isspace((unsigned char) *text))
		text++;
	p = text;
	if (*p == '\0')
		BAD_SPEC(spec, "@every needs an interval such as 30s, 5m or 1h30m");
	while (*p)
	{
		int			n;
		int			unit;

		if (!isdigit((unsigned char) *p))
			BAD_SPEC(spec, "interval \"%s\" is not valid: use whole numbers with units s, m, h and d, e.g. 90s or 1h30m", text);
		n = take_number(&p);
		switch (pg_tolower((unsigned char) *p))
		{
			case 's':
				unit = 1;
				break;
			case 'm':
				unit = SECS_PER_MINUTE;
				break;
			case 'h':
				unit = SECS_PER_HOUR;
				break;
			case 'd':
				unit = SECS_PER_DAY;
				break;
			default:
				BAD_SPEC(spec, "interval \"%s\" is not valid: use whole numbers with units s, m, h and d, e.g. 90s or 1h30m", text);
		}
		p++;
		secs += (int64) n * unit;	/* each term is below 2^34: no overflow */
		if (secs > MAX_EVERY_SECS)
			BAD_SPEC(spec, "interval \"%s\" is longer than 366 days", text);
		while (isspace((unsigned char) *p))
			p++;
	}
	if (secs < 1)
		BAD_SPEC(spec, "interval \"%s\" is shorter than 1 second", text);
	c->every = secs * USECS_PER_SEC;
}

static void
parse_spec(const char *spec, CronSpec *c)
{
	const char *p = spec;
	const char *word;
	int			len;

	memset(c, 0, sizeof(*c));
	if (strlen(spec) > MAX_SPEC_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron: %zu bytes is too long", strlen(spec)),
				 errdetail("A cron spec has at most %d bytes.", MAX_SPEC_LEN),
				 errhint(CRON_HINT)));
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		BAD_SPEC(spec, "it is empty");
	if (*p != '@')
	{
		parse_fields(spec, p, c);
		return;
	}
	word = ++p;
	while (*p && !isspace((unsigned char) *p))
		p++;
	len = p - word;
	if (len == 5 && pg_strncasecmp(word, "every", 5) == 0)
	{
		parse_every(spec, p, c);
		return;
	}
	for (int i = 0; i < lengthof(macros); i++)
	{
		if (len == strlen(macros[i].name) && pg_strncasecmp(word, macros[i].name, len) == 0)
		{
			while (isspace((unsigned char) *p))
				p++;
			if (*p)
				BAD_SPEC(spec, "@%s takes nothing after it", macros[i].name);
			parse_fields(spec, macros[i].spec, c);
			return;
		}
	}
	if (len == 6 && pg_strncasecmp(word, "reboot", 6) == 0)
		BAD_SPEC(spec, "@reboot is not supported: a schedule ticks by the clock");
	BAD_SPEC(spec, "unknown macro \"@%.*s\"", len, word);
}

/*
 * Searching
 */

static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b < 0) ? q - 1 : q;
}

static void
out_of_range(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

static void
check_finite(TimestampTz t)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("a schedule has no ticks around an infinite timestamp")));
}

static TimestampTz
in_range(int64 t)
{
	if (!IS_VALID_TIMESTAMP(t))
		out_of_range();
	return t;
}

static void
never(const char *spec)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron \"%s\": it never fires", spec),
			 errdetail("No date matches its day-of-month, month and day-of-week fields."),
			 errhint(CRON_HINT)));
}

/* The first set bit of set at or above from, at most top; -1 if none. */
static int
bit_at_or_above(uint64 set, int from, int top)
{
	for (int i = from; i <= top; i++)
		if (set & BIT(i))
			return i;
	return -1;
}

/* The last set bit of set at or below from; -1 if none. */
static int
bit_at_or_below(uint64 set, int from)
{
	for (int i = from; i >= 0; i--)
		if (set & BIT(i))
			return i;
	return -1;
}

static bool
day_matches(const CronSpec *c, int jd, int mday)
{
	bool		by_mday = (c->mdays & BIT(mday)) != 0;
	bool		by_wday = (c->wdays & BIT(j2day(jd))) != 0;

	if (c->mday_star || c->wday_star)
		return by_mday && by_wday;
	return by_mday || by_wday;
}

/* The timestamp of minute `minute` of Julian day jd. */
static TimestampTz
at_minute(int jd, int minute)
{
	return in_range(((int64) (jd - POSTGRES_EPOCH_JDATE) * MINS_PER_DAY + minute) *
					USECS_PER_MINUTE);
}

/* The first tick strictly after t. */
static TimestampTz
cron_after(const CronSpec *c, const char *spec, TimestampTz t)
{
	int64		m = floor_div(t, USECS_PER_MINUTE) + 1;	/* whole minutes */
	int			jd = (int) floor_div(m, MINS_PER_DAY) + POSTGRES_EPOCH_JDATE;
	int			minute = (int) (m - floor_div(m, MINS_PER_DAY) * MINS_PER_DAY);
	int			last = jd + SEARCH_DAYS;

	while (jd <= last)
	{
		int			y,
					mon,
					d,
					h,
					mi;

		if (jd >= TIMESTAMP_END_JULIAN)
			out_of_range();
		j2date(jd, &y, &mon, &d);
		if (!(c->months & BIT(mon)))
		{
			jd = (mon == 12) ? date2j(y + 1, 1, 1) : date2j(y, mon + 1, 1);
			minute = 0;
			continue;
		}
		if (!day_matches(c, jd, d) ||
			(h = bit_at_or_above(c->hours, minute / MINS_PER_HOUR, 23)) < 0)
		{
			jd++;
			minute = 0;
			continue;
		}
		if (h != minute / MINS_PER_HOUR)
			minute = h * MINS_PER_HOUR;
		mi = bit_at_or_above(c->minutes, minute % MINS_PER_HOUR, 59);
		if (mi < 0)
		{
			minute = (h + 1) * MINS_PER_HOUR;
			if (minute >= MINS_PER_DAY)
			{
				jd++;
				minute = 0;
			}
			continue;
		}
		return at_minute(jd, h * MINS_PER_HOUR + mi);
	}
	never(spec);
	return 0;					/* not reached */
}

/* The last tick at or before t. */
static TimestampTz
cron_at_or_before(const CronSpec *c, const char *spec, TimestampTz t)
{
	int64		m = floor_div(t, USECS_PER_MINUTE);
	int			jd = (int) floor_div(m, MINS_PER_DAY) + POSTGRES_EPOCH_JDATE;
	int			minute = (int) (m - floor_div(m, MINS_PER_DAY) * MINS_PER_DAY);
	int			first = jd - SEARCH_DAYS;

	while (jd >= first)
	{
		int			y,
					mon,
					d,
					h,
					mi;

		if (jd < 0)
			out_of_range();
		j2date(jd, &y, &mon, &d);
		if (!(c->months & BIT(mon)))
		{
			jd = date2j(y, mon, 1) - 1;
			minute = MINS_PER_DAY - 1;
			continue;
		}
		if (!day_matches(c, jd, d) ||
			(h = bit_at_or_below(c->hours, minute / MINS_PER_HOUR)) < 0)
		{
			jd--;
			minute = MINS_PER_DAY - 1;
			continue;
		}
		if (h != minute / MINS_PER_HOUR)
			minute = h * MINS_PER_HOUR + MINS_PER_HOUR - 1;
		mi = bit_at_or_below(c->minutes, minute % MINS_PER_HOUR);
		if (mi < 0)
		{
			minute = h * MINS_PER_HOUR - 1;
			if (minute < 0)
			{
				jd--;
				minute = MINS_PER_DAY - 1;
			}
			continue;
		}
		return at_minute(jd, h * MINS_PER_HOUR + mi);
	}
	never(spec);
	return 0;					/* not reached */
}

/*
 * @every: the ticks are the timestamps r + k * period, where r puts the
 * Unix epoch on a tick.  t - r cannot overflow (|r| < period); the tick
 * can, near the end of the timestamp range.
 */
static TimestampTz
every_tick(const CronSpec *c, TimestampTz t, bool after)
{
	int64		unix_offset = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	int64		r = (c->every - unix_offset % c->every) % c->every;
	int64		k = floor_div(t - r, c->every) + (after ? 1 : 0);
	int64		tick;

	if (pg_mul_s64_overflow(k, c->every, &tick) || pg_add_s64_overflow(tick, r, &tick))
		out_of_range();
	return in_range(tick);
}

/* fx.cron_next(spec text, after timestamptz) -> the first tick after it */
Datum
fx_cron_next(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	CronSpec	c;

	parse_spec(spec, &c);
	check_finite(after);
	if (c.every)
		PG_RETURN_TIMESTAMPTZ(every_tick(&c, after, true));
	PG_RETURN_TIMESTAMPTZ(cron_after(&c, spec, after));
}

/* fx.cron_prev(spec text, at timestamptz) -> the last tick at or before it */
Datum
fx_cron_prev(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	CronSpec	c;

	parse_spec(spec, &c);
	check_finite(at);
	if (c.every)
		PG_RETURN_TIMESTAMPTZ(every_tick(&c, at, false));
	PG_RETURN_TIMESTAMPTZ(cron_at_or_before(&c, spec, at));
}
