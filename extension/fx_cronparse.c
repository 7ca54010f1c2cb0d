/*
 * fx_cronparse.c: cron specs parsed and searched, in plain C.
 *
 * What fx.cron_next and fx.cron_prev compute (the language is described
 * in fx_cron.c), with no PostgreSQL in it: it includes no postgres.h,
 * allocates nothing and reports a bad spec in the caller's buffer, so
 * that the extension and fuzz/fuzz_cron.c build the same file.  Days are
 * Julian day numbers, as PostgreSQL's date2j counts them, from the
 * proleptic Gregorian calendar.
 *
 * The search steps over whole months, days and hours that do not match and
 * gives up after 400 years: the Gregorian calendar repeats every 400 years
 * (146097 days, a whole number of weeks), so a spec with no tick in that
 * window has none at all ("0 0 30 2 *").
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fx/fx_cronparse.h"

#define USECS_PER_SEC INT64_C(1000000)
#define USECS_PER_MINUTE INT64_C(60000000)
#define USECS_PER_DAY INT64_C(86400000000)
#define SECS_PER_MINUTE 60
#define SECS_PER_HOUR 3600
#define SECS_PER_DAY 86400
#define MINS_PER_HOUR 60
#define MINS_PER_DAY 1440
#define MAX_EVERY_SECS (366 * SECS_PER_DAY)
#define SEARCH_DAYS 146097		/* 400 Gregorian years */
#define POSTGRES_EPOCH_JDATE 2451545	/* 2000-01-01 */
#define UNIX_EPOCH_JDATE 2440588	/* 1970-01-01 */
#define END_JDATE 109203528		/* 294277-01-01, the first day out of range */
#define BIT(n) (UINT64_C(1) << (n))

typedef struct cron_field
{
	const char *name;			/* for messages */
	int			lo;
	int			hi;
	const char *const *names;	/* names of lo, lo + 1, ...; or NULL */
} cron_field;

/* One parse: the spec, for messages, and where they go. */
typedef struct parse
{
	const char *spec;
	char	   *err;
	size_t		errlen;
} parse;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const day_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const cron_field fields[5] = {
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

static bool bad(parse *ps, const char *fmt,...) __attribute__((format(printf, 2, 3)));

/* The spec is not valid: "invalid cron "SPEC": WHY".  Returns false. */
static bool
bad(parse *ps, const char *fmt,...)
{
	va_list		ap;
	int			n = snprintf(ps->err, ps->errlen, "invalid cron \"%s\": ", ps->spec);

	if (n >= 0 && (size_t) n < ps->errlen)
	{
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - n, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* ASCII only, as the names are. */
static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool
same_word(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char) a[i]) != lower((unsigned char) b[i]) || b[i] == '\0')
			return false;
	return true;
}

/* ---------------------------------------------------------------------
 * Parsing
 * --------------------------------------------------------------------- */

/* The number at *p: its digits are consumed; above 99999 it is 99999. */
static int
take_number(const char **p)
{
	int			n = 0;

	while (isdigit((unsigned char) **p))
	{
		if (n < 99999)
		{
			n = n * 10 + (**p - '0');
			if (n > 99999)
				n = 99999;
		}
		(*p)++;
	}
	return n;
}

/* A value of field f at *p, a number or a name, in the item (item, len). */
static bool
take_value(parse *ps, const cron_field *f, const char **p, const char *item, int len,
		   int *v)
{
	const char *start = *p;

	if (isdigit((unsigned char) **p))
	{
		*v = take_number(p);
		if (*v < f->lo || *v > f->hi)
			return bad(ps, "%s %.*s is out of range %d-%d",
					   f->name, (int) (*p - start), start, f->lo, f->hi);
		return true;
	}
	while (isalpha((unsigned char) **p))
		(*p)++;
	if (*p == start && start != item)
		return bad(ps, "%s \"%.*s\" is not valid", f->name, len, item);
	if (f->names && *p - start == 3)
	{
		for (int i = 0; f->names[i]; i++)
			if (same_word(start, f->names[i], 3))
			{
				*v = f->lo + i;
				return true;
			}
	}
	if (f->names)
		return bad(ps, "%s \"%.*s\" is not a number or a %s name",
				   f->name, len, item, f == &fields[3] ? "month" : "day");
	return bad(ps, "%s \"%.*s\" is not a number", f->name, len, item);
}

/* One item of a list: *, N or N-M, with an optional /step. */
static bool
parse_item(parse *ps, const cron_field *f, const char *item, int len, uint64_t *bits)
{
	const char *p = item;
	const char *end = item + len;
	int			lo;
	int			hi;
	int			step = 1;

	if (len == 0)
		return bad(ps, "%s has an empty list item", f->name);
	if (*p == '*')
	{
		lo = f->lo;
		hi = f->hi;
		p++;
	}
	else
	{
		if (!take_value(ps, f, &p, item, len, &lo))
			return false;
		hi = lo;
		if (p < end && *p == '-')
		{
			p++;
			if (!take_value(ps, f, &p, item, len, &hi))
				return false;
			if (hi < lo)
				return bad(ps, "%s range \"%.*s\" runs backwards", f->name, len, item);
		}
		else if (p < end && *p == '/')
			hi = f->hi;
	}
	if (p < end && *p == '/')
	{
		const char *s = ++p;

		if (!isdigit((unsigned char) *p))
			return bad(ps, "%s \"%.*s\" has no step after \"/\"", f->name, len, item);
		step = take_number(&p);
		if (step < 1 || step > f->hi - f->lo + 1)
			return bad(ps, "%s step %.*s is out of range 1-%d",
					   f->name, (int) (p - s), s, f->hi - f->lo + 1);
	}
	if (p != end)
		return bad(ps, "%s \"%.*s\" is not valid", f->name, len, item);
	for (int v = lo; v <= hi; v += step)
		*bits |= BIT(v);
	return true;
}

/* A field: a comma-separated list of items. */
static bool
parse_field(parse *ps, const cron_field *f, const char *text, int len, uint64_t *bits)
{
	const char *item = text;
	const char *end = text + len;

	*bits = 0;
	for (;;)
	{
		const char *comma = memchr(item, ',', end - item);
		const char *stop = comma ? comma : end;

		if (!parse_item(ps, f, item, stop - item, bits))
			return false;
		if (comma == NULL)
			return true;
		item = comma + 1;
	}
}

/* The five fields of text. */
static bool
parse_fields(parse *ps, const char *text, fx_cron *c)
{
	const char *start[5];
	int			len[5];
	int			n = 0;
	const char *p = text;
	uint64_t	bits[5];

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
		return bad(ps, "it has %d field%s, not 5 (minute hour day-of-month month day-of-week)",
				   n, n == 1 ? "" : "s");
	for (int i = 0; i < 5; i++)
		if (!parse_field(ps, &fields[i], start[i], len[i], &bits[i]))
			return false;
	c->minutes = bits[0];
	c->hours = bits[1];
	c->mdays = bits[2];
	c->months = bits[3];
	c->wdays = bits[4];
	if (c->wdays & BIT(7))
		c->wdays = (c->wdays & ~BIT(7)) | BIT(0);	/* 7 is Sunday too */
	c->mday_star = start[2][0] == '*';
	c->wday_star = start[4][0] == '*';
	return true;
}

#define EVERY_USAGE "use whole numbers with units s, m, h and d, e.g. 90s or 1h30m"

/* "@every 1h30m": the sum of whole numbers with units s, m, h and d. */
static bool
parse_every(parse *ps, const char *text, fx_cron *c)
{
	const char *p;
	int64_t		secs = 0;

	while (isspace((unsigned char) *text))
		text++;
	p = text;
	if (*p == '\0')
		return bad(ps, "@every needs an interval such as 30s, 5m or 1h30m");
	while (*p)
	{
		int			n;
		int			unit;

		if (!isdigit((unsigned char) *p))
			return bad(ps, "interval \"%s\" is not valid: " EVERY_USAGE, text);
		n = take_number(&p);
		switch (lower((unsigned char) *p))
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
				return bad(ps, "interval \"%s\" is not valid: " EVERY_USAGE, text);
		}
		p++;
		secs += (int64_t) n * unit; /* each term is below 2^34: no overflow */
		if (secs > MAX_EVERY_SECS)
			return bad(ps, "interval \"%s\" is longer than 366 days", text);
		while (isspace((unsigned char) *p))
			p++;
	}
	if (secs < 1)
		return bad(ps, "interval \"%s\" is shorter than 1 second", text);
	c->every = secs * USECS_PER_SEC;
	return true;
}

fx_cron_status
fx_cronparse_spec(const char *spec, fx_cron *c, char *err, size_t errlen)
{
	parse		ps = {spec, err, errlen};
	const char *p = spec;
	const char *word;
	size_t		len;

	memset(c, 0, sizeof(*c));
	if (errlen > 0)
		err[0] = '\0';
	if (strlen(spec) > FX_CRON_MAX_SPEC)
	{
		snprintf(err, errlen, "invalid cron: %zu bytes is too long", strlen(spec));
		return FX_CRON_TOO_LONG;
	}
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
	{
		bad(&ps, "it is empty");
		return FX_CRON_INVALID;
	}
	if (*p != '@')
		return parse_fields(&ps, p, c) ? FX_CRON_OK : FX_CRON_INVALID;
	word = ++p;
	while (*p && !isspace((unsigned char) *p))
		p++;
	len = p - word;
	if (len == 5 && same_word(word, "every", 5))
		return parse_every(&ps, p, c) ? FX_CRON_OK : FX_CRON_INVALID;
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
	{
		if (len == strlen(macros[i].name) && same_word(word, macros[i].name, len))
		{
			while (isspace((unsigned char) *p))
				p++;
			if (*p)
			{
				bad(&ps, "@%s takes nothing after it", macros[i].name);
				return FX_CRON_INVALID;
			}
			return parse_fields(&ps, macros[i].spec, c) ? FX_CRON_OK : FX_CRON_INVALID;
		}
	}
	if (len == 6 && same_word(word, "reboot", 6))
		bad(&ps, "@reboot is not supported: a schedule ticks by the clock");
	else
		bad(&ps, "unknown macro \"@%.*s\"", (int) len, word);
	return FX_CRON_INVALID;
}

/* ---------------------------------------------------------------------
 * Days
 * --------------------------------------------------------------------- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t		q = a / b;

	return (a % b < 0) ? q - 1 : q;
}

/* The Julian day number of y-m-d (proleptic Gregorian, year 0 = 1 BC). */
static int
date_to_jd(int y, int m, int d)
{
	int64_t		yy = m <= 2 ? y - 1 : y;	/* years from March */
	int64_t		era = floor_div(yy, 400);
	int64_t		yoe = yy - era * 400;
	int64_t		doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t		doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return (int) (era * 146097 + doe - 719468 + UNIX_EPOCH_JDATE);
}

/* The date of Julian day number jd. */
static void
jd_to_date(int jd, int *y, int *m, int *d)
{
	int64_t		z = (int64_t) jd - UNIX_EPOCH_JDATE + 719468;	/* days from 0000-03-01 */
	int64_t		era = floor_div(z, 146097);
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;

	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

/* Sunday = 0. */
static int
jd_weekday(int jd)
{
	return (int) ((jd + INT64_C(1)) % 7 + 7) % 7;
}

/* ---------------------------------------------------------------------
 * Searching
 * --------------------------------------------------------------------- */

/* The first set bit of set at or above from, at most top; -1 if none. */
static int
bit_at_or_above(uint64_t set, int from, int top)
{
	for (int i = from; i <= top; i++)
		if (set & BIT(i))
			return i;
	return -1;
}

/* The last set bit of set at or below from; -1 if none. */
static int
bit_at_or_below(uint64_t set, int from)
{
	for (int i = from; i >= 0; i--)
		if (set & BIT(i))
			return i;
	return -1;
}

static bool
day_matches(const fx_cron *c, int jd, int mday)
{
	bool		by_mday = (c->mdays & BIT(mday)) != 0;
	bool		by_wday = (c->wdays & BIT(jd_weekday(jd))) != 0;

	if (c->mday_star || c->wday_star)
		return by_mday && by_wday;
	return by_mday || by_wday;
}

static bool
in_range(int64_t t)
{
	return t >= FX_CRON_MIN_TIME && t < FX_CRON_END_TIME;
}

/* The timestamp of minute `minute` of Julian day jd. */
static fx_cron_status
at_minute(int jd, int minute, int64_t *tick)
{
	*tick = ((int64_t) (jd - POSTGRES_EPOCH_JDATE) * MINS_PER_DAY + minute) * USECS_PER_MINUTE;
	return in_range(*tick) ? FX_CRON_OK : FX_CRON_OUT_OF_RANGE;
}

/* Whole minutes since the epoch of t, as Julian day and minute of it. */
static void
split_minute(int64_t m, int *jd, int *minute)
{
	*jd = (int) floor_div(m, MINS_PER_DAY) + POSTGRES_EPOCH_JDATE;
	*minute = (int) (m - floor_div(m, MINS_PER_DAY) * MINS_PER_DAY);
}

/* The first tick of a five-field spec strictly after t. */
static fx_cron_status
cron_after(const fx_cron *c, int64_t t, int64_t *tick)
{
	int			jd;
	int			minute;
	int			last;

	split_minute(floor_div(t, USECS_PER_MINUTE) + 1, &jd, &minute);
	last = jd + SEARCH_DAYS;
	while (jd <= last)
	{
		int			y,
					mon,
					d,
					h,
					mi;

		if (jd >= END_JDATE)
			return FX_CRON_OUT_OF_RANGE;
		jd_to_date(jd, &y, &mon, &d);
		if (!(c->months & BIT(mon)))
		{
			jd = (mon == 12) ? date_to_jd(y + 1, 1, 1) : date_to_jd(y, mon + 1, 1);
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
		return at_minute(jd, h * MINS_PER_HOUR + mi, tick);
	}
	return FX_CRON_NEVER;
}

/* The last tick of a five-field spec at or before t. */
static fx_cron_status
cron_at_or_before(const fx_cron *c, int64_t t, int64_t *tick)
{
	int			jd;
	int			minute;
	int			first;

	split_minute(floor_div(t, USECS_PER_MINUTE), &jd, &minute);
	first = jd - SEARCH_DAYS;
	while (jd >= first)
	{
		int			y,
					mon,
					d,
					h,
					mi;

		if (jd < 0)
			return FX_CRON_OUT_OF_RANGE;
		jd_to_date(jd, &y, &mon, &d);
		if (!(c->months & BIT(mon)))
		{
			jd = date_to_jd(y, mon, 1) - 1;
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
		return at_minute(jd, h * MINS_PER_HOUR + mi, tick);
	}
	return FX_CRON_NEVER;
}

/*
 * @every: the ticks are the timestamps r + k * period, where r puts the
 * Unix epoch on a tick.
 */
static int64_t
every_phase(const fx_cron *c)
{
	int64_t		unix_offset = (int64_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return (c->every - unix_offset % c->every) % c->every;
}

/*
 * The tick after t, or at or before it.  t - r cannot overflow (|r| <
 * period); the tick can, near the end of the timestamp range.
 */
static fx_cron_status
every_tick(const fx_cron *c, int64_t t, bool after, int64_t *tick)
{
	int64_t		r = every_phase(c);
	int64_t		k = floor_div(t - r, c->every) + (after ? 1 : 0);

	if (__builtin_mul_overflow(k, c->every, tick) || __builtin_add_overflow(*tick, r, tick))
		return FX_CRON_OUT_OF_RANGE;
	return in_range(*tick) ? FX_CRON_OK : FX_CRON_OUT_OF_RANGE;
}

/*
 * A time the search can start from: PostgreSQL's timestamps (and the end
 * of their range), within which no arithmetic here can overflow.
 */
static bool
start_in_range(int64_t t)
{
	return t >= FX_CRON_MIN_TIME && t <= FX_CRON_END_TIME;
}

fx_cron_status
fx_cronparse_next(const fx_cron *c, int64_t t, int64_t *tick)
{
	if (!start_in_range(t))
		return FX_CRON_OUT_OF_RANGE;
	if (c->every)
		return every_tick(c, t, true, tick);
	return cron_after(c, t, tick);
}

fx_cron_status
fx_cronparse_prev(const fx_cron *c, int64_t t, int64_t *tick)
{
	if (!start_in_range(t))
		return FX_CRON_OUT_OF_RANGE;
	if (c->every)
		return every_tick(c, t, false, tick);
	return cron_at_or_before(c, t, tick);
}

bool
fx_cronparse_matches(const fx_cron *c, int64_t t)
{
	int			jd;
	int			minute;
	int			y,
				mon,
				d;

	if (!in_range(t))
		return false;
	if (c->every)
		return (t - every_phase(c)) % c->every == 0;
	if (t % USECS_PER_MINUTE != 0)
		return false;
	split_minute(t / USECS_PER_MINUTE, &jd, &minute);
	jd_to_date(jd, &y, &mon, &d);
	return (c->months & BIT(mon)) && day_matches(c, jd, d) &&
		(c->hours & BIT(minute / MINS_PER_HOUR)) && (c->minutes & BIT(minute % MINS_PER_HOUR));
}
