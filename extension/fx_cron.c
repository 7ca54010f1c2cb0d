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
 * The parsing and the search are in fx_cronparse.c, in plain C (a fuzz
 * target builds it too: fuzz/fuzz_cron.c); this file turns their
 * statuses into PostgreSQL errors.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "fx.h"
#include "fx/fx_cronparse.h"

PG_FUNCTION_INFO_V1(fx_cron_next);
PG_FUNCTION_INFO_V1(fx_cron_prev);

/* Parse spec into *c, or raise the error that says why it is not valid. */
static void
parse_spec(const char *spec, fx_cron *c)
{
	char		err[FX_CRON_ERROR_LEN];

	switch (fx_cronparse_spec(spec, c, err, sizeof(err)))
	{
		case FX_CRON_OK:
			return;
		case FX_CRON_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s", err),
					 errdetail("A cron spec has at most %d bytes.", FX_CRON_MAX_SPEC),
					 errhint(FX_CRON_HINT)));
			break;
		case FX_CRON_INVALID:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s", err),
					 errhint(FX_CRON_HINT)));
			break;
		case FX_CRON_NEVER:
		case FX_CRON_OUT_OF_RANGE:
			elog(ERROR, "unexpected status parsing a cron spec");
			break;
	}
}

static void
check_finite(TimestampTz t)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("a schedule has no ticks around an infinite timestamp")));
}

/* The tick a search found, or the error it ended in. */
static TimestampTz
tick_or_error(fx_cron_status status, TimestampTz tick, const char *spec)
{
	switch (status)
	{
		case FX_CRON_OK:
			break;
		case FX_CRON_NEVER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cron \"%s\": it never fires", spec),
					 errdetail("No date matches its day-of-month, month and day-of-week fields."),
					 errhint(FX_CRON_HINT)));
			break;
		case FX_CRON_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
			break;
		case FX_CRON_INVALID:
		case FX_CRON_TOO_LONG:
			elog(ERROR, "unexpected status %d searching for a cron tick", (int) status);
			break;
	}
	return tick;
}

/* fx.cron_next(spec text, after timestamptz) -> the first tick after it */
Datum
fx_cron_next(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	fx_cron		c;
	int64		tick = 0;
	fx_cron_status status;

	parse_spec(spec, &c);
	check_finite(after);
	status = fx_cronparse_next(&c, after, &tick);
	PG_RETURN_TIMESTAMPTZ(tick_or_error(status, tick, spec));
}

/* fx.cron_prev(spec text, at timestamptz) -> the last tick at or before it */
Datum
fx_cron_prev(PG_FUNCTION_ARGS)
{
	char	   *spec = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	fx_cron		c;
	int64		tick = 0;
	fx_cron_status status;

	parse_spec(spec, &c);
	check_finite(at);
	status = fx_cronparse_prev(&c, at, &tick);
	PG_RETURN_TIMESTAMPTZ(tick_or_error(status, tick, spec));
}
