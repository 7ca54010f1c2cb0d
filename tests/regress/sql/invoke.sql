--
-- invoke: fx_invoke (transactional enqueue, references, idempotency keys,
-- buckets, priority, bad input), fx_status, fx_cancel, fx_logs, fx_result
-- and fx_call's argument checks.  No worker runs here.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;

-- Run a statement; return its SQLSTATE and messages instead of failing,
-- with invocation ids written as ID.  (It also catches query_canceled,
-- which WHEN OTHERS does not, for fx_call's timeout.)
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

SELECT fx_deploy('inv-echo', 'cat');
SELECT fx_deploy('inv-echo', 'cat', options => '{"retries": 5}');
SELECT fx_deploy('inv-other', 'cat', options => '{"retries": 0}');
-- fx_alias is tested in deploy; an alias row is all fx_invoke needs.
INSERT INTO fx.alias (fn, alias, version) VALUES ('inv-echo', 'stable', 1);

--
-- Transactional enqueue: the invocation exists iff the caller commits.
--
BEGIN;
SELECT fx_invoke('inv-echo', '{"n": 1}') IS NOT NULL AS enqueued;
SELECT count(*) AS visible_inside FROM fx.invocation WHERE fn = 'inv-echo';
ROLLBACK;
SELECT count(*) AS after_rollback FROM fx.invocation WHERE fn = 'inv-echo';
BEGIN;
SELECT count(*) AS enqueued
  FROM (SELECT fx_invoke('inv-echo', jsonb_build_object('n', i))
		  FROM generate_series(1, 3) i) s;
SAVEPOINT s1;
SELECT fx_invoke('inv-echo', '{"n": 4}') IS NOT NULL AS enqueued;
ROLLBACK TO SAVEPOINT s1;
COMMIT;
SELECT args FROM fx.invocation WHERE fn = 'inv-echo' ORDER BY id;

-- The row as enqueued.
SELECT fx_invoke('inv-echo', '{"n": 5}') AS id \gset
SELECT fn, version, key, queue, idempotency_key, args, status, priority,
	   attempts, max_attempts, lost, lease_owner, lease_epoch, lease_pid,
	   waiter, result, error, not_before = created_at AS runnable_now,
	   bucket BETWEEN 0 AND 4095 AS bucket_ok
  FROM fx.invocation WHERE id = :id;
SELECT fx_status(:id);
SELECT fx_result(:id) IS NULL AS not_finished;
SELECT fx_result(:id, '20ms') IS NULL AS not_finished_after_wait;
SELECT count(*) AS log_lines FROM fx_logs(:id);

--
-- Function references: name (alias live), name:version, name:alias.
--
SELECT fx_invoke('inv-echo') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo:1') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo:2') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo:stable') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo:live') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-other') AS v \gset
SELECT version, max_attempts FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-nope');
SELECT fx_invoke('inv-nope:1');
SELECT fx_invoke('inv-echo:9');
SELECT fx_invoke('inv-echo:beta');
SELECT fx_invoke('');
SELECT fx_invoke(':1');
SELECT fx_invoke('inv-echo:');
-- A function without a live alias.
DELETE FROM fx.alias WHERE fn = 'inv-other' AND alias = 'live';
SELECT fx_invoke('inv-other');
SELECT fx_invoke('inv-other:1') AS v \gset
SELECT version FROM fx.invocation WHERE id = :v;

--
-- Arguments.
--
SELECT fx_invoke('inv-echo') AS v \gset
SELECT args FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', 'null') AS v \gset
SELECT args FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', '[1, "two", {"3": null}]') AS v \gset
SELECT args FROM fx.invocation WHERE id = :v;
SELECT fx_invoke(NULL, '{}');
SELECT fx_invoke('inv-echo', NULL);
SELECT fx_invoke('inv-echo', '{"n": 1');
SELECT fx_invoke('inv-echo', '{n: 1}');
SET fx.max_payload_size = '1kB';
SHOW fx.max_payload_size;
SELECT fx_invoke('inv-echo', jsonb_build_object('blob', repeat('x', 2000)));
SELECT fx_invoke('inv-echo', jsonb_build_object('blob', repeat('x', 900))) IS NOT NULL AS fits;
RESET fx.max_payload_size;
SET fx.max_payload_size = 100;
SET fx.no_such_setting = 1;

--
-- Delay.
--
SELECT fx_invoke('inv-echo', delay => '1 hour') AS v \gset
SELECT not_before - created_at AS delay FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', delay => '0') AS v \gset
SELECT not_before - created_at AS delay FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', delay => '-1 second');
SELECT fx_invoke('inv-echo', delay => '-1 day');
-- A delay made of mixed signs that is positive overall is a positive delay.
SELECT fx_invoke('inv-echo', '{"mixed": true}', delay => '1 day -1 hour') AS v \gset
SELECT args, not_before > created_at + interval '22 hours' AS delayed
  FROM fx.invocation WHERE id = :v;

--
-- Idempotency keys: the same key returns the same invocation.
--
SELECT fx_invoke('inv-echo', '{"order": 1}', idempotency_key => 'order-1') AS first \gset
SELECT fx_invoke('inv-echo', '{"order": 1}', idempotency_key => 'order-1') = :first AS same_id;
SELECT fx_invoke('inv-echo', '{"order": "changed"}', idempotency_key => 'order-1') = :first AS same_id;
SELECT fx_invoke('inv-echo:1', '{}', idempotency_key => 'order-1') = :first AS same_id;
SELECT args, idempotency_key FROM fx.invocation WHERE id = :first;
SELECT count(*) FROM fx.invocation WHERE idempotency_key = 'order-1';
-- Keys are per function.
SELECT fx_invoke('inv-other:1', '{}', idempotency_key => 'order-1') <> :first AS other_id;
-- A key whose invocation was rolled back is free again.
BEGIN;
SELECT fx_invoke('inv-echo', '{"try": 1}', idempotency_key => 'order-2') IS NOT NULL AS enqueued;
ROLLBACK;
SELECT fx_invoke('inv-echo', '{"try": 2}', idempotency_key => 'order-2') AS v \gset
SELECT args FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', '{}', idempotency_key => '');
SELECT fx_invoke('inv-echo', '{}', idempotency_key => NULL) AS v \gset
SELECT idempotency_key IS NULL AS no_key FROM fx.invocation WHERE id = :v;

--
-- Buckets: a key gives the stable bucket fx.bucket(fn, key); no key gives a
-- random one in 0..4095.
--
SELECT fx_invoke('inv-echo', '{}', key => 'user-42') AS v \gset
SELECT bucket = fx.bucket('inv-echo', 'user-42') AS keyed, key FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo:1', '{}', key => 'user-42') AS v \gset
SELECT bucket = fx.bucket('inv-echo', 'user-42') AS keyed_by_name FROM fx.invocation WHERE id = :v;
SELECT count(DISTINCT bucket) AS buckets
  FROM fx.invocation WHERE fn = 'inv-echo' AND key = 'user-42';
SELECT fx_invoke('inv-echo', '{}', key => '') AS v \gset
SELECT bucket = fx.bucket('inv-echo', '') AS empty_key FROM fx.invocation WHERE id = :v;
SELECT fx.bucket('inv-echo', 'user-42') = fx.bucket('inv-echo', 'user-42') AS stable,
	   fx.bucket('inv-echo', 'user-42') BETWEEN 0 AND 4095 AS in_range,
	   fx.bucket('inv-echo', NULL) IS NULL AS strict;
CREATE TEMP TABLE spread AS
	SELECT fx_invoke('inv-echo', to_jsonb(i)) AS id FROM generate_series(1, 200) i;
SELECT min(bucket) >= 0 AS min_ok, max(bucket) <= 4095 AS max_ok,
	   count(DISTINCT bucket) > 1 AS spread
  FROM fx.invocation JOIN spread USING (id);
SELECT count(*) AS keyed_elsewhere FROM fx.invocation
 WHERE key IS NOT NULL AND bucket <> fx.bucket(fn, key);

--
-- Priority and queue.
--
SELECT fx_invoke('inv-echo', '{}', priority => 10, queue => 'fast') AS v \gset
SELECT priority, queue FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', priority => -5) AS v \gset
SELECT priority FROM fx.invocation WHERE id = :v;
SELECT fx_invoke('inv-echo', priority => NULL) AS v \gset
SELECT priority FROM fx.invocation WHERE id = :v;

--
-- fx_invoke_all: a batch in one INSERT, ids in the order of args, each
-- row as fx_invoke would make it; transactional; bad input refused whole.
--
BEGIN;
SELECT fx_invoke_all('inv-echo', ARRAY['{"b": 1}', '{"b": 2}', '{"b": 3}']::jsonb[],
					 queue => 'bulk', priority => 3) AS ids \gset
SELECT cardinality(:'ids'::bigint[]) AS n,
	   (SELECT array_agg(i ORDER BY i) FROM unnest(:'ids'::bigint[]) i) = :'ids'::bigint[] AS ascending;
SELECT o.n, i.args, i.fn, i.version, i.queue, i.priority, i.status, i.key,
	   i.idempotency_key, i.max_attempts, i.blocked, i.bucket BETWEEN 0 AND 4095 AS bucket_ok,
	   i.not_before = i.created_at AS due_now, i.deadline, i.invoker
  FROM unnest(:'ids'::bigint[]) WITH ORDINALITY o(id, n)
  JOIN fx.invocation i ON i.id = o.id ORDER BY o.n;
ROLLBACK;
SELECT count(*) AS after_rollback FROM fx.invocation WHERE queue = 'bulk';
SELECT fx_invoke_all('inv-echo:stable', ARRAY['{"b": 4}']::jsonb[], delay => '1 hour',
					 timeout => '2 hours') AS ids \gset
SELECT version, not_before - created_at AS delay, deadline - created_at AS timeout
  FROM fx.invocation WHERE id = (:'ids'::bigint[])[1];
SELECT fx_invoke_all('inv-echo', '{}') AS empty;
SELECT fx_invoke_all('inv-echo', ARRAY['{"b": 5}', NULL]::jsonb[]);
SELECT fx_invoke_all('inv-echo', NULL);
SELECT fx_invoke_all('inv-echo', ARRAY[['{}'], ['{}']]::jsonb[]);
SELECT fx_invoke_all('inv-nope', ARRAY['{}']::jsonb[]);
SELECT fx_invoke_all('inv-echo', ARRAY['{}']::jsonb[], delay => '-1s');
SELECT fx_invoke_all('inv-echo', ARRAY['{}']::jsonb[], timeout => '0');
SET fx.max_payload_size = '1kB';
SELECT fx_invoke_all('inv-echo', ARRAY['{"b": 6}', jsonb_build_object('blob', repeat('x', 2000))]);
RESET fx.max_payload_size;
SELECT count(*) AS none_of_the_refused FROM fx.invocation WHERE args->'b' IN ('5', '6');

--
-- fx_status, fx_cancel, fx_logs and fx_result on ids that do not exist.
--
SELECT pg_temp.try('SELECT fx_status(-1)');
SELECT pg_temp.try('SELECT fx_cancel(-1)');
SELECT pg_temp.try('SELECT * FROM fx_logs(-1)');
SELECT pg_temp.try('SELECT fx_result(-1)');
SELECT pg_temp.try($$SELECT fx_result(-1, '20ms')$$);
SELECT pg_temp.try(format($$SELECT fx_result(%s, '-1s')$$, :id));
SELECT fx_status(NULL) IS NULL AS strict, fx_cancel(NULL) IS NULL AS strict,
	   fx_result(NULL) IS NULL AS strict;

--
-- fx_cancel of a queued invocation.
--
SELECT fx_cancel(:id);
SELECT fx_status(:id);
SELECT status, error, finished_at IS NOT NULL AS finished, lease_owner
  FROM fx.invocation WHERE id = :id;
SELECT fx_cancel(:id) AS cancelled_again;
SELECT pg_temp.try(format('SELECT fx_result(%s)', :id));
SELECT pg_temp.try(format('SELECT fx_result(%s, ''1s'')', :id));

--
-- fx_call: bad input is rejected before anything is enqueued; with no
-- worker running, a call times out and its invocation is cancelled.
--
SELECT fx_call(NULL, '{}');
SELECT fx_call('inv-echo', NULL);
SELECT fx_call('inv-echo', '{}', '-1s');
SET fx.max_payload_size = '1kB';
SELECT fx_call('inv-echo', jsonb_build_object('blob', repeat('x', 2000)));
RESET fx.max_payload_size;
SELECT fx_call('inv-nope', '{}');
SELECT pg_temp.try($$SELECT fx_call('inv-echo', '{"sync": 1}', '50ms')$$);
SELECT status, max_attempts, waiter IS NOT NULL AS has_waiter, key
  FROM fx.invocation WHERE args = '{"sync": 1}';
-- With a key, the call's invocation gets the key's bucket.
SELECT pg_temp.try($$SELECT fx_call('inv-echo', '{"sync": 2}', '50ms', 'sync-2')$$);
SELECT status, max_attempts, key, bucket = fx.bucket('inv-echo', 'sync-2') AS keyed
  FROM fx.invocation WHERE args = '{"sync": 2}';

-- Leave the queue empty for the next test.
DELETE FROM fx.invocation WHERE fn IN ('inv-echo', 'inv-other');
