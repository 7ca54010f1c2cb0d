--
-- claim_cursor: fx.claim going on after a cursor (after_priority,
-- after_id), the last row a worker's previous claim took, as workers claim
-- so that a long-held snapshot's dead index entries are not stepped over
-- again.  Rows before the cursor are not looked at, except new ones of a
-- higher priority and the ids named in also, which keep the key rule;
-- fx.cycle names the next invocation of each key it finished.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;

TRUNCATE fx.invocation, fx.log;

-- One finish item, carrying the lease's current token, and the fn and key
-- of a keyed one, as its worker would.
CREATE FUNCTION pg_temp.item(id bigint, ok boolean) RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_strip_nulls(jsonb_build_object(
			'id', i.id, 'epoch', i.lease_epoch, 'token', i.lease_token,
			'fn', CASE WHEN i.key IS NOT NULL THEN i.fn END, 'key', i.key,
			'ok', ok, 'error', CASE WHEN NOT ok THEN 'boom' END))
	  FROM fx.invocation i WHERE i.id = item.id
$$;
CREATE FUNCTION pg_temp.id_of(n int) RETURNS bigint
LANGUAGE sql AS $$ SELECT i.id FROM fx.invocation i WHERE i.args->>'n' = n::text $$;

SELECT fx_deploy('cc-job', 'true', options => '{"retries": 2}');
SELECT fx_deploy('cc-keyed', 'true');

SELECT count(fx_invoke('cc-job', jsonb_build_object('n', i))) FROM generate_series(1, 6) i;
SELECT args->>'n' AS n FROM fx.claim('w', 2);

-- n 1 fails and is queued again, due at once (backoff 0): behind the cursor.
SELECT count(*) AS finished FROM fx.finish('w', jsonb_build_array(pg_temp.item(pg_temp.id_of(1), false)), 0);
-- New ones: one of priority 0 (after the cursor) and one of priority 5.
SELECT count(fx_invoke('cc-job', '{"n": 7}')) + count(fx_invoke('cc-job', '{"n": 8}', priority => 5));

-- After the cursor (0, n 2): the new one of higher priority first, then
-- on from the cursor; n 1, behind it, is not looked at.
SELECT args->>'n' AS n, priority FROM fx.claim('w', 3, after_priority => 0, after_id => pg_temp.id_of(2));
-- One of higher priority older than the cursor is not seen from it ...
UPDATE fx.invocation SET priority = 9, status = 'queued', attempts = 0, lease_owner = NULL
 WHERE id = pg_temp.id_of(4);
SELECT args->>'n' AS n FROM fx.claim('w', 10, after_priority => 0, after_id => pg_temp.id_of(5));
-- ... but from the start everything is, in order.
SELECT args->>'n' AS n, priority, attempt FROM fx.claim('w', 10);

-- also: named rows are claimed wherever they rank, in order with the rest,
-- up to n.
SELECT count(fx_invoke('cc-job', jsonb_build_object('n', i))) FROM generate_series(11, 14) i;
UPDATE fx.invocation SET status = 'queued', lease_owner = NULL WHERE id = pg_temp.id_of(3);
SELECT args->>'n' AS n FROM fx.claim('w', 2, after_priority => 0, after_id => pg_temp.id_of(11),
									 also => ARRAY[pg_temp.id_of(3)]);
SELECT args->>'n' AS n FROM fx.claim('w', 10, after_priority => 0, after_id => pg_temp.id_of(13),
									 also => ARRAY[pg_temp.id_of(13)]);

SELECT count(*) AS rest FROM fx.claim('w', 100);

-- The key rule holds for named rows: not while an earlier one of the key
-- is running, blocked or not.
SELECT count(fx_invoke('cc-keyed', jsonb_build_object('n', i), key => 'k')) FROM generate_series(21, 23) i;
SELECT args->>'n' AS n, blocked FROM fx.invocation WHERE fn = 'cc-keyed' ORDER BY id;
SELECT args->>'n' AS n FROM fx.claim('w', 1);
SELECT args->>'n' AS n FROM fx.claim('w', 10, after_priority => 0, after_id => pg_temp.id_of(23),
									 also => ARRAY[pg_temp.id_of(22), pg_temp.id_of(23)]);
UPDATE fx.invocation SET blocked = false WHERE id = pg_temp.id_of(22);
SELECT args->>'n' AS n FROM fx.claim('w', 10, after_priority => 0, after_id => pg_temp.id_of(23),
									 also => ARRAY[pg_temp.id_of(22)]);
UPDATE fx.invocation SET blocked = true WHERE id = pg_temp.id_of(22);

-- fx.cycle: finishing n 21 unblocks n 22, which ranks before the cursor;
-- the same cycle claims it.
SELECT args->>'n' AS n, key FROM fx.cycle('w', jsonb_build_array(pg_temp.item(pg_temp.id_of(21), true)),
										  5, 0, 30000, 0, pg_temp.id_of(23));
-- Not when it fails and is retried: n 22 is still the key's next.
SELECT args->>'n' AS n FROM fx.cycle('w', jsonb_build_array(pg_temp.item(pg_temp.id_of(22), false)),
									 5, 60000, 30000, 0, pg_temp.id_of(23));
SELECT args->>'n' AS n, status, blocked FROM fx.invocation WHERE fn = 'cc-keyed' ORDER BY id;
SELECT count(*) AS rest FROM fx.claim('w', 100);

-- No starvation: with overdue, a claim from the start gives one in eight
-- places (at least one) to those overdue by more than that, oldest first,
-- whatever their priority; a claim after a cursor, or without overdue,
-- goes by priority alone.
SELECT count(fx_invoke('cc-job', jsonb_build_object('n', i))) FROM generate_series(31, 32) i;
SELECT count(fx_invoke('cc-job', jsonb_build_object('n', i), priority => 9))
  FROM generate_series(41, 56) i;
UPDATE fx.invocation SET not_before = now() - interval '1 minute'
 WHERE args->>'n' IN ('31', '32');
SELECT args->>'n' AS n, priority FROM fx.claim('w', 2);
SELECT args->>'n' AS n, priority FROM fx.claim('w', 2, after_priority => 9,
											   after_id => pg_temp.id_of(42), overdue => '2 s');
SELECT args->>'n' AS n, priority FROM fx.claim('w', 8, overdue => '2 s');
SELECT args->>'n' AS n, priority FROM fx.claim('w', 16, overdue => '2 s');
SELECT count(*) AS claimed_with_none FROM fx.claim('w', 0, overdue => '2 s');

TRUNCATE fx.invocation, fx.log;

-- Whatever the statistics say: a worker's session keeps the plans it made
-- while the queue was empty (and last analyzed empty), and once the queue
-- has grown its claims and finishes still read only the rows they take,
-- not the whole queue.
ANALYZE fx.invocation;
SELECT count(*) AS claimed_from_empty
  FROM generate_series(1, 8) g, LATERAL fx.cycle('w', '[]', 4, 0, 30000, NULL, NULL, 2000) c;
SELECT count(fx_invoke('cc-job', jsonb_build_object('n', i))) FROM generate_series(1, 3000) i;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE reads AS
	SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) AS n
	  FROM pg_stat_user_tables WHERE relid = 'fx.invocation'::regclass;
CREATE TEMP TABLE took AS SELECT * FROM fx.claim('w', 8, overdue => '2 s');
CREATE TEMP TABLE took2 AS
	SELECT * FROM fx.cycle('w', (SELECT jsonb_agg(pg_temp.item(t.id, true)) FROM took t), 8,
						   0, 30000, 0, (SELECT max(t.id) FROM took t), 2000);
SELECT count(*) AS finished
  FROM fx.finish('w', (SELECT jsonb_agg(pg_temp.item(t.id, true)) FROM took2 t), 0);
SELECT pg_stat_force_next_flush();
SELECT s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) - r.n < 300 AS reads_only_what_it_takes
  FROM pg_stat_user_tables s, reads r WHERE s.relid = 'fx.invocation'::regclass;

TRUNCATE fx.invocation, fx.log;
