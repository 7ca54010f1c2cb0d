--
-- queue: the worker interface by hand.  fx.claim (priority, not_before,
-- leases), fx.finish (ok, retry with backoff, dead, failed, logs), fencing
-- of fx.finish and fx.release by owner and epoch, fx.reap and fx.adopt,
-- fx.next_due, and fx_result on finished invocations.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;

-- fx.claim takes queued work of every function: start from an empty queue.
TRUNCATE fx.invocation, fx.log;

-- Run a statement; return its SQLSTATE and messages instead of failing,
-- with invocation ids written as ID.  (WHEN OTHERS does not catch 57014,
-- which fx uses for cancelled invocations.)
CREATE FUNCTION pg_temp.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
	hnt text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS OR query_canceled THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN regexp_replace(st || ' ' || msg
						  || coalesce(' | detail: ' || nullif(det, ''), '')
						  || coalesce(' | hint: ' || nullif(hnt, ''), ''),
						  '(nvocation |fx_logs\()[0-9]+', '\1ID', 'g');
END
$$;

-- One finish item, carrying the lease's current token as its worker would.
CREATE FUNCTION pg_temp.item(id bigint, epoch int, ok boolean,
							 result jsonb DEFAULT NULL, error text DEFAULT NULL,
							 retryable boolean DEFAULT NULL,
							 logs jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
		'id', id, 'epoch', epoch, 'ok', ok, 'result', result, 'error', error,
		'retryable', retryable, 'logs', logs,
		'token', (SELECT i.lease_token FROM fx.invocation i WHERE i.id = item.id)))
$$;

SELECT fx_deploy('q-job', 'true', options => '{"retries": 2, "timeout_ms": 1000}');
SELECT fx_deploy('q-once', 'true', options => '{"retries": 0}');
SELECT fx_deploy('q-twice', 'true', options => '{"retries": 1}');

SELECT fx.next_due() IS NULL AS nothing_queued;

--
-- fx.claim honours priority (then enqueue order) and not_before.
--
SELECT fx_invoke('q-job', '{"n": 1}') AS n1 \gset
SELECT fx_invoke('q-job', '{"n": 2}', priority => 10) AS n2 \gset
SELECT fx_invoke('q-job', '{"n": 3}') AS n3 \gset
SELECT fx_invoke('q-job', '{"n": 4}', priority => 100, delay => '1 hour') AS n4 \gset
SELECT fx.next_due() <= now() AS due_now;
BEGIN;
SELECT args->>'n' AS n, epoch, fn, version, key, attempt,
	   idempotency_key = 'fx-' || id AS default_idempotency_key,
	   length(hash) = 64 AS hash, command, mode, memory_mb, timeout_ms,
	   options->>'timeout_ms' AS option_timeout
  FROM fx.claim('worker-a', 2);
SELECT args->>'n' AS n, status, attempts, lease_owner, lease_epoch,
	   lease_pid = pg_backend_pid() AS my_pid, worker,
	   lease_expiry - now() AS lease, started_at = now() AS started
  FROM fx.invocation WHERE status = 'running' ORDER BY id;
COMMIT;
SELECT args->>'n' AS n FROM fx.claim('worker-a', 10);
-- Only the delayed one is left, and it is not due.
SELECT args->>'n' AS n FROM fx.claim('worker-a', 10);
SELECT fx.next_due() > now() + interval '59 minutes' AS due_in_an_hour;
UPDATE fx.invocation SET not_before = now() WHERE id = :n4;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10, lease_slack => '1 minute');
SELECT fx.next_due() IS NULL AS nothing_queued;
SELECT status, count(*) FROM fx.invocation GROUP BY status ORDER BY status;

--
-- fx.finish with ok: result, metering and logs are stored.
--
SELECT fx.finish('worker-a', jsonb_build_array(
	jsonb_build_object('id', :n2, 'epoch', 1, 'ok', true,
					   'token', (SELECT lease_token FROM fx.invocation WHERE id = :n2),
					   'result', '{"sum": 3}'::jsonb, 'wall_ms', 12.5,
					   'cpu_ms', 3, 'max_rss_kb', 2048,
					   'logs', '[[1700000000000, "stdout", "hello"],
								 [1700000000001, "stderr", "careful"],
								 [1700000000002, "fx", "exit 0"]]'::jsonb)))
	   = :n2 AS accepted;
SELECT status, result, error, attempts, wall_ms, cpu_ms, max_rss_kb,
	   lease_owner, lease_pid, lease_expiry, finished_at IS NOT NULL AS finished
  FROM fx.invocation WHERE id = :n2;
SELECT attempt, (extract(epoch FROM at) * 1000)::bigint AS at_ms, stream, line
  FROM fx_logs(:n2);
SELECT fx_status(:n2), fx_result(:n2), fx_result(:n2, '1s') AS waited;
SELECT fx_cancel(:n2) AS cancelled;
-- A second finish of the same attempt changes nothing and stores no logs.
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n2, 1, false, NULL, 'late', NULL, '[[0, "stdout", "dup"]]')));
SELECT status, result, error FROM fx.invocation WHERE id = :n2;
SELECT count(*) AS log_lines FROM fx.log WHERE invocation_id = :n2;
-- An ok item without a result succeeds with the result JSON null.
SELECT fx.finish('worker-a', jsonb_build_array(pg_temp.item(:n4, 1, true))) = :n4 AS accepted;
SELECT status, result FROM fx.invocation WHERE id = :n4;
SELECT fx_result(:n4) = 'null'::jsonb AS json_null;

--
-- A retryable error requeues with exponential backoff; the last allowed
-- attempt makes the invocation dead.
--
BEGIN;
SELECT fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n1, 1, false, NULL, 'boom', true, '[[0, "stderr", "try 1"]]')),
	backoff_ms => 500) = :n1 AS accepted;
SELECT status, attempts, error, not_before - now() AS backoff, lease_owner,
	   result FROM fx.invocation WHERE id = :n1;
COMMIT;
SELECT fx_status(:n1), fx_result(:n1) IS NULL AS not_finished;
-- Not claimable during its backoff.
SELECT count(*) AS claimed FROM fx.claim('worker-a', 10);
UPDATE fx.invocation SET not_before = now() WHERE id = :n1;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10);
SELECT error IS NULL AS error_cleared FROM fx.invocation WHERE id = :n1;
-- "retryable" defaults to true; the backoff doubles.
BEGIN;
SELECT fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n1, 2, false, NULL, 'boom', NULL, '[[0, "stderr", "try 2"]]')),
	backoff_ms => 500) = :n1 AS accepted;
SELECT status, attempts, not_before - now() AS backoff FROM fx.invocation WHERE id = :n1;
COMMIT;
UPDATE fx.invocation SET not_before = now() WHERE id = :n1;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10);
SELECT fx.finish('worker-a', jsonb_build_array(
	jsonb_build_object('id', :n1, 'epoch', 3, 'ok', false, 'error', 'boom',
					   'token', (SELECT lease_token FROM fx.invocation WHERE id = :n1),
					   'detail', 'The third try failed too.',
					   'logs', '[[0, "stderr", "try 3"]]'::jsonb))) = :n1 AS accepted;
SELECT status, attempts, max_attempts, error, error_detail,
	   finished_at IS NOT NULL AS finished FROM fx.invocation WHERE id = :n1;
SELECT attempt, stream, line FROM fx_logs(:n1);
SELECT fx_status(:n1);
-- fx_result raises the function's error with SQLSTATE 38000.
SELECT pg_temp.try(format('SELECT fx_result(%s)', :n1));
SELECT pg_temp.try(format('SELECT fx_result(%s, ''1s'')', :n1));
\set VERBOSITY sqlstate
SELECT fx_result(:n1);
\set VERBOSITY default
SELECT set_config('fx_test.dead_id', :'n1', false) IS NOT NULL AS set;
DO $$
BEGIN
	PERFORM fx_result(current_setting('fx_test.dead_id')::bigint);
EXCEPTION WHEN external_routine_exception THEN
	RAISE NOTICE 'caught SQLSTATE %: %', SQLSTATE, SQLERRM;
END
$$;
-- Nothing is retried once dead.
SELECT count(*) AS claimed FROM fx.claim('worker-a', 10);

-- A non-retryable error ends the invocation although attempts remain.
SELECT fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n3, 1, false, NULL, 'bad input', false))) = :n3 AS accepted;
SELECT status, attempts, max_attempts, error FROM fx.invocation WHERE id = :n3;

-- With max_attempts 1 (no retries) a failed attempt is "failed".
SELECT fx_invoke('q-once', '{"n": 5}') AS n5 \gset
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10);
SELECT max_attempts FROM fx.invocation WHERE id = :n5;
SELECT fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n5, 1, false, NULL, 'exit status 3', true))) = :n5 AS accepted;
SELECT status, attempts, error FROM fx.invocation WHERE id = :n5;
SELECT pg_temp.try(format('SELECT fx_result(%s)', :n5));

--
-- Fencing: fx.finish and fx.release with a wrong epoch or owner change
-- nothing, and their logs are dropped.
--
SELECT fx_invoke('q-job', '{"n": 6}') AS n6 \gset
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n6, 2, true, '"wrong epoch"', NULL, NULL, '[[0, "stdout", "x"]]')));
SELECT count(*) AS accepted FROM fx.finish('worker-b', jsonb_build_array(
	pg_temp.item(:n6, 1, true, '"wrong owner"', NULL, NULL, '[[0, "stdout", "x"]]')));
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n6 + 1000, 1, true, '"no such id"')));
-- Right owner and epoch, another lease's token (a claim lost in a crash
-- and made again), or none: refused.
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n6, 1, true, '"wrong token"') || jsonb_build_object('token', gen_random_uuid())));
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n6, 1, true, '"no token"') - 'token'));
SELECT fx.release('worker-b', ARRAY[:n6]::bigint[], ARRAY[1]) AS released;
SELECT fx.release('worker-a', ARRAY[:n6]::bigint[], ARRAY[0]) AS released;
SELECT status, attempts, lease_owner, lease_epoch, result
  FROM fx.invocation WHERE id = :n6;
SELECT count(*) AS log_lines FROM fx.log WHERE invocation_id = :n6;
-- A release gives the invocation back; the attempt does not count.
SELECT fx.release('worker-a', ARRAY[:n6]::bigint[], ARRAY[1]) AS released;
SELECT status, attempts, lease_owner, lease_pid, lease_expiry, lease_epoch
  FROM fx.invocation WHERE id = :n6;
SELECT fx.release('worker-a', ARRAY[:n6]::bigint[], ARRAY[1]) AS released_again;
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n6, 1, true, '"after release"')));
-- Claimed again, under a new epoch; one finish with a stale and a current
-- item accepts only the current one.
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-b', 10);
SELECT array_agg(f) = ARRAY[:n6]::bigint[] AS only_current
  FROM fx.finish('worker-b', jsonb_build_array(
	pg_temp.item(:n6, 1, true, '"stale"', NULL, NULL, '[[0, "stdout", "stale"]]'),
	pg_temp.item(:n6, 2, true, '"current"', NULL, NULL, '[[0, "stdout", "current"]]'))) f;
SELECT status, result, attempts, worker FROM fx.invocation WHERE id = :n6;
SELECT attempt, line FROM fx_logs(:n6);

-- A running invocation that is cancelled: its worker's finish is refused.
SELECT fx_invoke('q-job', '{"n": 7}') AS n7 \gset
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-a', 10);
SELECT fx_cancel(:n7);
SELECT status, lease_owner FROM fx.invocation WHERE id = :n7;
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n7, 1, true, '"too late"')));
SELECT fx.release('worker-a', ARRAY[:n7]::bigint[], ARRAY[1]) AS released;
SELECT status, result FROM fx.invocation WHERE id = :n7;
SELECT pg_temp.try(format('SELECT fx_result(%s)', :n7));

-- An attempt that failed because the worker lost its sql's connection
-- ("lost"): queued again at once, not counted, at most 3 times; then it
-- counts as a failure like any other (q-once allows one attempt: failed).
SELECT fx_invoke('q-once', '{"n": 8}') AS n8 \gset
SELECT args->>'n' AS n, attempt FROM fx.claim('worker-a', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n8, 1, false, NULL, 'the invocation''s database connection was lost')
	|| '{"lost": true}'));
SELECT status, attempts, lost, error, not_before <= now() AS due_now
  FROM fx.invocation WHERE id = :n8;
SELECT args->>'n' AS n, attempt FROM fx.claim('worker-a', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n8, 2, false, NULL, 'lost again') || '{"lost": true}'));
SELECT args->>'n' AS n, attempt FROM fx.claim('worker-a', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-a', jsonb_build_array(
	pg_temp.item(:n8, 3, false, NULL, 'lost a third time') || '{"lost": true}'));
SELECT status, attempts, lost, error FROM fx.invocation WHERE id = :n8;

--
-- fx.reap: a lease whose backend is gone, or no longer carries the owner's
-- application_name, or whose lease expired, is lost; three losses make the
-- invocation dead.  Lost attempts do not count against max_attempts.
--
SELECT count(*) AS running FROM fx.invocation WHERE status = 'running';
SET application_name = 'worker-r';
SELECT fx_invoke('q-job', '{"n": 8}') AS n8 \gset
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
-- This session is worker-r: the lease is alive.
SELECT fx.reap() AS reaped;
SELECT status, lease_owner FROM fx.invocation WHERE id = :n8;
-- Now the session is someone else, as a new backend with worker-r's pid
-- would be.
SET application_name = 'not-worker-r';
SELECT fx.reap() AS reaped;
SELECT status, attempts, lost, error, lease_owner, lease_pid, lease_expiry,
	   finished_at FROM fx.invocation WHERE id = :n8;
SELECT fx.reap() AS reaped_again;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
SELECT fx.reap() AS reaped;
SELECT status, attempts, lost FROM fx.invocation WHERE id = :n8;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
-- The stale worker of attempt 2 cannot finish attempt 3's lease.
SELECT count(*) AS accepted FROM fx.finish('worker-r', jsonb_build_array(
	pg_temp.item(:n8, 2, true, '"stale"')));
SELECT fx.reap() AS reaped;
SELECT status, attempts, lost, error, finished_at IS NOT NULL AS finished
  FROM fx.invocation WHERE id = :n8;
SELECT pg_temp.try(format('SELECT fx_result(%s)', :n8));
SELECT count(*) AS claimed FROM fx.claim('worker-r', 10);

-- Lost attempts do not count: with max_attempts 2, a lost attempt and a
-- failed one leave the invocation queued for a third.
SELECT fx_invoke('q-twice', '{"n": 9}') AS n9 \gset
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
SELECT fx.reap() AS reaped;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
SELECT fx.finish('worker-r', jsonb_build_array(
	pg_temp.item(:n9, 2, false, NULL, 'boom')), backoff_ms => 0) = :n9 AS accepted;
SELECT status, attempts, lost, max_attempts FROM fx.invocation WHERE id = :n9;
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
SELECT fx.finish('worker-r', jsonb_build_array(
	pg_temp.item(:n9, 3, false, NULL, 'boom')), backoff_ms => 0) = :n9 AS accepted;
SELECT status, attempts, lost FROM fx.invocation WHERE id = :n9;

-- An expired lease is lost even though its worker's session is alive.
SET application_name = 'worker-r';
SELECT fx_invoke('q-job', '{"n": 10}') AS n10 \gset
SELECT args->>'n' AS n, attempt, epoch
  FROM fx.claim('worker-r', 10, lease_slack => '-1 hour');
SELECT fx.reap() AS reaped;
SELECT status, lost, error FROM fx.invocation WHERE id = :n10;

-- fx.adopt: a reconnected worker takes back its leases, so that fx.reap
-- does not count them as lost.
SELECT args->>'n' AS n, attempt, epoch FROM fx.claim('worker-r', 10);
UPDATE fx.invocation SET lease_pid = 0 WHERE id = :n10;	-- the old backend
SELECT fx.adopt('worker-r') AS adopted;
SELECT fx.adopt('worker-nobody') AS adopted;
SELECT lease_pid = pg_backend_pid() AS mine FROM fx.invocation WHERE id = :n10;
SELECT fx.reap() AS reaped;
SELECT status, lost FROM fx.invocation WHERE id = :n10;
SELECT fx.finish('worker-r', jsonb_build_array(
	pg_temp.item(:n10, 2, true, '{"done": true}'))) = :n10 AS accepted;
SELECT fx_result(:n10);
RESET application_name;

--
-- Ordering and single writer: invocations with the same (fn, key) run one
-- at a time, in enqueue order (DESIGN.md, "What must hold"), so a claim
-- skips a key whose earlier invocation is still running.
--
SELECT fx_invoke('q-job', '{"n": 11}', key => 'acct-1') AS n11 \gset
SELECT fx_invoke('q-job', '{"n": 12}', key => 'acct-1') AS n12 \gset
SELECT fx_invoke('q-job', '{"n": 13}', key => 'acct-2') AS n13 \gset
SELECT args->>'n' AS n, key, attempt, epoch FROM fx.claim('worker-k', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-k', jsonb_build_array(
	pg_temp.item(:n11, 1, true), pg_temp.item(:n13, 1, true)));
SELECT args->>'n' AS n, key, attempt, epoch FROM fx.claim('worker-k', 10);
SELECT count(*) AS accepted FROM fx.finish('worker-k', jsonb_build_array(
	pg_temp.item(:n12, 1, true)));

-- Every invocation of this test, as it ended.
SELECT args->>'n' AS n, fn, status, attempts, lost
  FROM fx.invocation ORDER BY id;

-- Bad worker input.
\set SHOW_CONTEXT never
SELECT fx.claim('worker-a', -1);
SELECT fx.finish('worker-a', '{"id": 1}');
SELECT fx.release('worker-a', ARRAY[1, 2]::bigint[], ARRAY[1]) AS released;

TRUNCATE fx.invocation, fx.log;
