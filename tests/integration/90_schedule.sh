#!/usr/bin/env bash
# 90_schedule.sh: schedules with two real workers.  An "@every 1s" schedule
# runs each tick exactly once (one invocation per idempotency key, none
# missed) and on time, although both workers fire schedules on every tick of
# theirs; fx_unschedule stops it, ticks enqueued ahead included.  After
# "downtime" (next_at a day in the past) a cron schedule runs its latest
# missed tick once and moves next_at to the future.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

workers_are() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fx-%'")" -ge "$1" ]; }
# ran NAME N: N invocations of schedule NAME have succeeded.
ran() {
	[ "$(q "SELECT count(*) FROM fx.invocation
	         WHERE idempotency_key LIKE 'fx-schedule-$1-%' AND status = 'succeeded'")" -ge "$2" ]
}

# beat: answers its args.
mkdir -p "$FX_TEST_DIR/fn/beat"
cat >"$FX_TEST_DIR/fn/beat/main" <<'EOF'
#!/bin/sh
cat
EOF
chmod +x "$FX_TEST_DIR/fn/beat/main"
fx_deploy beat "$FX_TEST_DIR/fn/beat" --timeout 10s --retries 0

fx_worker_start A
fx_worker_start B
wait_for "two workers are connected" 10 workers_are 2

# --- @every 1s over ~5 s
first=$(q "SELECT fx_schedule('every', '@every 1s', 'beat', '{\"n\": 1}')")
check_eq "fx_schedule returns the next whole second" t \
	"$(q "SELECT '$first'::timestamptz = date_trunc('second', now()) + interval '1 second'
	        OR '$first'::timestamptz = date_trunc('second', now())")"
sleep 6
upto=$(q "SELECT now()")
# Every tick from the first one to a second ago, with how many invocations it has.
per_tick="SELECT t, (SELECT count(*) FROM fx.invocation i
                     WHERE i.fn = 'beat' AND i.idempotency_key = fx.schedule_key('every', t)) AS n
             FROM generate_series('$first'::timestamptz, '$upto'::timestamptz - interval '1 second',
                                  interval '1 second') t"
ticks=$(q "SELECT count(*) FROM ($per_tick) s")
check "about 5 ticks have come ($ticks)" test "$ticks" -ge 4 -a "$ticks" -le 6
check_eq "each of them has exactly one invocation" "$ticks" \
	"$(q "SELECT count(*) FROM ($per_tick) s WHERE n = 1")"
check_eq "no idempotency key twice, no tick twice" t \
	"$(q "SELECT count(*) = count(DISTINCT idempotency_key) AND count(*) = count(DISTINCT not_before)
	        FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'")"
# A tick enqueued ahead waits for its time; one enqueued late (a slow
# worker) is due at once: never before its tick, and not long after.
check_eq "each was due at its tick (not_before from the key's time to 1 s after)" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'
	        AND (not_before < to_timestamp(substr(idempotency_key, 19)::bigint)
	             OR not_before > to_timestamp(substr(idempotency_key, 19)::bigint) + interval '1 s')")"
wait_for "the ticks that came have succeeded" 10 ran every "$ticks"
late=$(q "SELECT round(max(extract(epoch FROM started_at - not_before)) * 1000)
            FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%' AND started_at IS NOT NULL")
check "and started on time: at most ${late} ms after their tick (< 1000 ms)" test "${late:-9999}" -lt 1000
check_eq "their args are the schedule's" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'
	        AND (args <> '{\"n\": 1}' OR (status = 'succeeded' AND result <> '{\"n\": 1}'))")"
check_eq "fx.schedules shows it with its latest invocation" "every|@every 1s|beat|t" \
	"$(q "SELECT name, cron, fn, last_invocation IS NOT NULL AND next_at > now() - interval '1 second'
	        FROM fx.schedules")"
echo "# ticks run by worker: $(q "SELECT string_agg(w || '=' || n, ' ') FROM (SELECT worker w, count(*) n
	FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%' GROUP BY 1 ORDER BY 1) s")"

# --- fx_unschedule stops it, including the ticks already enqueued ahead
check_eq "fx_unschedule returns true" t "$(q "SELECT fx_unschedule('every')")"
stopped=$(q "SELECT now()")
before=$(q "SELECT count(*) FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'")
sleep 2.5
check_eq "after it, no new invocation" "$before" \
	"$(q "SELECT count(*) FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'")"
check_eq "and none for a tick after it" 0 \
	"$(q "SELECT count(*) FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-every-%'
	        AND not_before > '$stopped'")"
check_eq "fx_unschedule of it again returns false" f "$(q "SELECT fx_unschedule('every')")"

# --- missed ticks: a day of them runs once, the latest
q "SELECT fx_schedule('minutely', '* * * * *', 'beat', '\"late\"')" >/dev/null
q "UPDATE fx.schedule SET next_at = now() - interval '1 day' WHERE name = 'minutely'" >/dev/null
wait_for "after 'downtime' the schedule runs" 10 ran minutely 1
sleep 1
# Ticks at or before its first run's enqueue are the missed ones (a later
# one may be enqueued ahead already).
missed="SELECT to_timestamp(substr(idempotency_key, 22)::bigint) AS tick,
               min(created_at) OVER () AS fired
          FROM fx.invocation WHERE idempotency_key LIKE 'fx-schedule-minutely-%'"
check_eq "once, for the latest tick that came" "1|t" \
	"$(q "SELECT count(*), bool_and(tick = fx.cron_prev('* * * * *', fired))
	        FROM ($missed) s WHERE tick <= fired")"
check_eq "and its next_at is the next minute" t \
	"$(q "SELECT next_at > now() AND next_at <= now() + interval '61 seconds' FROM fx.schedule WHERE name = 'minutely'")"
q "SELECT fx_unschedule('minutely')" >/dev/null

check_eq "the workers logged no error" 0 \
	"$(cat "$FX_TEST_DIR"/A.log "$FX_TEST_DIR"/B.log | grep -ciE 'error|failed|warning')"

exit $FX_FAILED
