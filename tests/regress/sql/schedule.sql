--
-- schedule: fx.cron_next and fx.cron_prev over every form of spec, the
-- errors for bad specs, fx_schedule, fx_unschedule and fx.schedules, and
-- fx.fire_schedules: each tick enqueued once under its idempotency key, the
-- missed-ticks rule, ticks enqueued ahead.  No worker runs here.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- Run a statement; return its SQLSTATE and messages instead of failing.
CREATE FUNCTION pg_temp.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN st || ' ' || msg || coalesce(' | detail: ' || nullif(det, ''), '');
END
$$;

--
-- Ticks.  2025-03-14 10:17:30 is a Friday in a year that is not a leap
-- year; next is strictly after it, prev at or before it.
--
SELECT spec, fx.cron_next(spec, '2025-03-14 10:17:30') AS next,
	   fx.cron_prev(spec, '2025-03-14 10:17:30') AS prev
  FROM (VALUES
	('* * * * *'),
	('*/15 * * * *'),
	('5,20,35 * * * *'),
	('10-12 * * * *'),
	('1-30/7 * * * *'),
	('50/4 * * * *'),
	('0 */6 * * *'),
	('30 8 * * *'),
	('0 0 1,15 * *'),
	('0 12 * JAN,jul *'),
	('0 12 1 feb-Apr *'),
	('0 9 * * MON-FRI'),
	('0 9 * * sat,Sun'),
	('0 0 * * 0'),
	('0 0 * * 7'),
	('0 0 * * 5-7'),
	('0 0 13 * *'),
	('0 0 13 * 5'),
	('0 0 1 * MON'),
	('0 0 */10 * 5'),
	('0 0 29 2 *'),
	('0 0 31 * *'),
	('0 0 30 * *'),
	('59 23 31 12 *'),
	(E' 0\t0  * *   * '),
	('@hourly'),
	('@daily'),
	('@midnight'),
	('@weekly'),
	('@monthly'),
	('@yearly'),
	('@annually'),
	('@DAILY'),
	('@every 30s'),
	('@every 45s'),
	('@every 1h30m'),
	('@every 90m'),
	('@every 2h 15m 10s'),
	('@every 1d'),
	('@every 7d'),
	('@Every 1H')) v(spec);

-- Exactly on a tick: next is the one after, prev is that tick.
SELECT fx.cron_next('*/15 * * * *', '2025-03-14 10:15:00') AS next,
	   fx.cron_prev('*/15 * * * *', '2025-03-14 10:15:00') AS prev,
	   fx.cron_next('@every 30s', '2025-03-14 10:17:00') AS every_next,
	   fx.cron_prev('@every 30s', '2025-03-14 10:17:00') AS every_prev;
-- A microsecond before a tick; across a year's end.
SELECT fx.cron_next('* * * * *', '2025-03-14 10:17:59.999999') AS next_minute,
	   fx.cron_next('0 0 1 1 *', '2025-12-31 23:59:59.999') AS new_year,
	   fx.cron_prev('0 0 1 1 *', '2026-01-01 00:00:00') AS prev_new_year;

-- Leap days: 2100 is not a leap year, so this gap is 8 years; and Feb 29
-- that is a Sunday (the day-of-week field starts with *: both must match).
WITH RECURSIVE t(n, at) AS (
	SELECT 1, fx.cron_next('0 0 29 2 *', '2091-01-01')
	UNION ALL
	SELECT n + 1, fx.cron_next('0 0 29 2 *', at) FROM t WHERE n < 4
)
SELECT n, at FROM t;
SELECT fx.cron_next('0 0 29 2 */7', '2025-01-01') AS sunday_feb_29,
	   extract(dow FROM fx.cron_next('0 0 29 2 */7', '2025-01-01')) AS dow;

-- Month ends: the 31st skips the months without one.
WITH RECURSIVE t(n, at) AS (
	SELECT 1, fx.cron_next('0 0 31 * *', '2025-01-01')
	UNION ALL
	SELECT n + 1, fx.cron_next('0 0 31 * *', at) FROM t WHERE n < 7
)
SELECT n, at::date FROM t;

-- @every ticks are multiples of the interval since the Unix epoch: the same
-- for every worker, whatever time each asks at.
SELECT extract(epoch FROM fx.cron_next('@every 7m', t))::bigint % 420 AS remainder,
	   count(DISTINCT fx.cron_next('@every 7m', t)) AS ticks
  FROM generate_series('2025-03-14 10:00:01'::timestamptz, '2025-03-14 10:06:59', '1 second') t
 GROUP BY 1;
SELECT fx.cron_next('@every 7d', '2025-03-14') AS every_7d,
	   to_char(fx.cron_next('@every 7d', '2025-03-14'), 'Dy') AS weekday_of_1970_01_01;

-- UTC, whatever the session's time zone.
SET TimeZone = 'America/New_York';
SELECT fx.cron_next('0 0 * * *', '2025-03-14 10:17:30+00') AS midnight_utc;
SET TimeZone = 'UTC';

-- Strict: a null gives null.
SELECT fx.cron_next(NULL, now()) IS NULL AS null_spec, fx.cron_prev('* * * * *', NULL) IS NULL AS null_time;

--
-- Bad specs: SQLSTATE 22023 naming the spec and what is wrong.
--
SELECT spec, pg_temp.try(format('SELECT fx.cron_next(%L, now())', spec)) AS error
  FROM (VALUES
	('61 * * * *'),
	('* 24 * * *'),
	('* * 0 * *'),
	('* * 32 * *'),
	('* * * 13 *'),
	('* * * * 8'),
	('*/0 * * * *'),
	('1-5/0 * * * *'),
	('*/61 * * * *'),
	('5-1 * * * *'),
	('*/ * * * *'),
	('1- * * * *'),
	('1,,2 * * * *'),
	('*5 * * * *'),
	('1/2/3 * * * *'),
	('99999999999999999999 * * * *'),
	('MON * * * *'),
	('* * * JANUARY *'),
	('* * * * FUNDAY'),
	('? * * * *'),
	('every minute'),
	('* * * *'),
	('* * * * * *'),
	(''),
	('   '),
	('@'),
	('@often'),
	('@reboot'),
	('@daily 5'),
	('@every'),
	('@every 0s'),
	('@every 500ms'),
	('@every 1.5h'),
	('@every -1s'),
	('@every 10'),
	('@every 367d'),
	('@every 99999999999999999999d'),
	('0 0 30 2 *'),
	('0 0 31 4,6,9,11 *')) v(spec);
SELECT pg_temp.try(format('SELECT fx.cron_next(%L, now())', repeat('*', 201))) AS too_long;
SELECT pg_temp.try($$SELECT fx.cron_next('* * * * *', 'infinity')$$) AS infinite;
SELECT pg_temp.try($$SELECT fx.cron_next('* * * * *', '294276-12-31 23:59:00')$$) AS past_the_end;
-- The hint shows the forms.
\set VERBOSITY default
SELECT fx.cron_next('61 * * * *', now());
\set VERBOSITY terse

--
-- fx_schedule, fx_unschedule, fx.schedules
--
SELECT fx_deploy('sched-echo', 'cat');
SELECT fx_deploy('sched-other', 'cat');

-- (Each part that depends on the clock runs in one transaction, so that
-- now() stays put and no minute ends in the middle of it.)
BEGIN;
SELECT fx_schedule('minutely', '* * * * *', 'sched-echo', '{"x": 1}')
	   = date_trunc('minute', now()) + interval '1 minute' AS returns_next_tick;
SELECT name, cron, fn, args, next_at = date_trunc('minute', now()) + interval '1 minute' AS next_ok,
	   last_at, last_invocation, last_status, last_error, owner = current_user AS owner_ok
  FROM fx.schedules;
-- Nothing due: nothing enqueued, nothing written.
SELECT fx.fire_schedules() AS enqueued;
SELECT count(*) AS invocations FROM fx.invocation WHERE fn LIKE 'sched-%';
COMMIT;

-- Bad input.
SELECT pg_temp.try($$SELECT fx_schedule('x', '61 * * * *', 'sched-echo')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '0 0 30 2 *', 'sched-echo')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', 'sched-nope')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', 'sched-echo:7')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', 'sched-echo:beta')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', 'sched-echo:')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', ':1')$$);
SELECT pg_temp.try($$SELECT fx_schedule('', '* * * * *', 'sched-echo')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', NULL, 'sched-echo')$$);
SELECT pg_temp.try($$SELECT fx_schedule('x', '* * * * *', 'sched-echo', NULL)$$);
SELECT count(*) AS schedules FROM fx.schedule;
-- Versions and aliases are fine.
SELECT fx_schedule('pinned', '@hourly', 'sched-echo:1') = date_trunc('hour', now()) + interval '1 hour'
	   AS next_hour;
SELECT fx_unschedule('pinned');
SELECT fx_unschedule('pinned');
SELECT fx_unschedule(NULL) IS NULL AS null_is_null;

-- Scheduling takes fx_deployer.
CREATE ROLE regress_fx_sched;
SET ROLE regress_fx_sched;
SELECT pg_temp.try($$SELECT fx_schedule('theirs', '* * * * *', 'sched-echo')$$);
RESET ROLE;
DROP ROLE regress_fx_sched;

--
-- Firing.  The tick of this minute comes (next_at put back to it): it is
-- enqueued once, to run now, under the key fx-schedule-NAME-EPOCH, and
-- next_at moves on.
--
BEGIN;
UPDATE fx.schedule SET next_at = date_trunc('minute', now()) WHERE name = 'minutely';
SELECT fx.fire_schedules() AS enqueued;
SELECT fx.fire_schedules() AS enqueued_again;
SELECT fn, args, status, not_before = now() AS runs_now,
	   regexp_replace(idempotency_key, '[0-9]+$', 'EPOCH') AS key_shape,
	   idempotency_key = 'fx-schedule-minutely-' || extract(epoch FROM date_trunc('minute', now()))::bigint
		   AS key_is_tick
  FROM fx.invocation WHERE fn LIKE 'sched-%';
SELECT s.next_at = date_trunc('minute', now()) + interval '1 minute' AS next_at_moved,
	   s.last_at = date_trunc('minute', now()) AS last_at_is_tick,
	   s.last_invocation = i.id AS last_invocation_ok, v.last_status
  FROM fx.schedule s JOIN fx.invocation i ON i.fn = 'sched-echo'
  JOIN fx.schedules v ON v.name = s.name
 WHERE s.name = 'minutely';
-- A worker that saw the old next_at (put back again) gets the same
-- invocation from the idempotency key: still one.
UPDATE fx.schedule SET next_at = date_trunc('minute', now()) WHERE name = 'minutely';
SELECT fx.fire_schedules() AS enqueued;
SELECT count(*) AS invocations, count(DISTINCT idempotency_key) AS keys
  FROM fx.invocation WHERE fn LIKE 'sched-%';
SELECT fx_unschedule('minutely');
COMMIT;

-- Missed ticks: a day of them (next_at a day ago) runs once, the latest,
-- and next_at moves to the first tick after now.
BEGIN;
SELECT fx_schedule('missed', '* * * * *', 'sched-other', '"late"') IS NOT NULL AS scheduled;
UPDATE fx.schedule SET next_at = now() - interval '1 day' WHERE name = 'missed';
SELECT fx.fire_schedules() AS enqueued;
SELECT count(*) AS invocations,
	   bool_and(idempotency_key = fx.schedule_key('missed', date_trunc('minute', now()))) AS latest_tick,
	   bool_and(not_before = now()) AS runs_now
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-missed-%';
SELECT next_at = date_trunc('minute', now()) + interval '1 minute' AS next_minute,
	   next_at > now() AS in_the_future
  FROM fx.schedules WHERE name = 'missed';
SELECT fx_unschedule('missed');
COMMIT;
-- Likewise a daily one three days late: today's midnight, once.
BEGIN;
SELECT fx_schedule('daily', '@daily', 'sched-other') = date_trunc('day', now()) + interval '1 day'
	   AS next_midnight;
UPDATE fx.schedule SET next_at = date_trunc('day', now()) - interval '3 days' WHERE name = 'daily';
SELECT fx.fire_schedules() AS enqueued;
SELECT count(*) AS invocations,
	   bool_and(idempotency_key = fx.schedule_key('daily', date_trunc('day', now()))) AS todays_midnight
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-daily-%';
SELECT next_at = date_trunc('day', now()) + interval '1 day' AS next_midnight
  FROM fx.schedules WHERE name = 'daily';
SELECT fx_unschedule('daily');
COMMIT;

-- Ahead: with a horizon, the ticks within it are enqueued now, each
-- delayed to its time: the tick that came (next_at put back to it) and
-- the six of "@every 10s" in the next minute.
BEGIN;
SELECT fx_schedule('every', '@every 10s', 'sched-other', '{"e": 1}') IS NOT NULL AS scheduled;
UPDATE fx.schedule SET next_at = fx.cron_prev(cron, now()) WHERE name = 'every';
SELECT fx.fire_schedules('1 minute') AS enqueued;
SELECT count(*) FILTER (WHERE not_before > now()) AS ahead,
	   count(*) FILTER (WHERE not_before = now()) AS runs_now,
	   bool_and(not_before = to_timestamp(substr(idempotency_key, 19)::bigint))
		   FILTER (WHERE not_before > now()) AS at_their_tick,
	   bool_and(not_before <= now() + interval '1 minute') AS within_horizon,
	   count(DISTINCT idempotency_key) AS distinct_ticks,
	   bool_and(substr(idempotency_key, 19)::bigint % 10 = 0) AS aligned
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%';
-- The view's next_at is the next tick to run (the first one ahead); the
-- table's is the first tick not enqueued yet.
SELECT v.next_at = fx.cron_next(v.cron, now()) AS next_at_is_first_ahead,
	   v.last_at = fx.cron_prev(v.cron, now() + interval '1 minute') AS last_at_is_last_ahead,
	   v.last_status, s.next_at = v.last_at + interval '10 seconds' AS table_next_at_after_them
  FROM fx.schedules v JOIN fx.schedule s USING (name) WHERE name = 'every';
-- Replacing withdraws the ticks enqueued ahead; its last tick is the one
-- that came; the new spec, function and args apply.
SELECT fx_schedule('every', '@hourly', 'sched-echo', '{"y": 2}') = date_trunc('hour', now()) + interval '1 hour'
	   AS replaced;
SELECT count(*) FILTER (WHERE not_before > now()) AS ahead,
	   count(*) FILTER (WHERE not_before = now()) AS runs_now
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%';
SELECT name, cron, fn, args, last_at = fx.cron_prev('@every 10s', now()) AS last_at_is_tick_that_came,
	   last_status
  FROM fx.schedules;
-- Unscheduling withdraws them too (here the next hour's: a horizon is at
-- most an hour).
SELECT fx.fire_schedules('2 hours') AS enqueued;
SELECT count(*) FILTER (WHERE not_before > now()) AS ahead
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%';
SELECT fx_unschedule('every');
SELECT count(*) FILTER (WHERE not_before > now()) AS ahead,
	   count(*) FILTER (WHERE not_before = now()) AS runs_now
  FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%';
COMMIT;

-- A tick that cannot be enqueued is skipped, with a warning and its error.
BEGIN;
SELECT fx_schedule('broken', '@hourly', 'sched-other') IS NOT NULL AS scheduled;
DELETE FROM fx.alias WHERE fn = 'sched-other' AND alias = 'live';
UPDATE fx.schedule SET next_at = now() - interval '1 hour' WHERE name = 'broken';
SELECT fx.fire_schedules() AS enqueued;
SELECT last_error, next_at > now() AS moved_on FROM fx.schedules WHERE name = 'broken';
SELECT fx_unschedule('broken');
COMMIT;
SELECT count(*) AS schedules FROM fx.schedules;

-- Leave no invocation for the tests that claim after this one.
DELETE FROM fx.invocation WHERE fn LIKE 'sched-%';
