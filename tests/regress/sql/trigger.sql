--
-- fx_on_change: a table's row changes invoke a function, in the writing
-- transaction; and the metering views fx.usage and fx.stats.
--
SET client_min_messages = warning;
\set VERBOSITY terse
TRUNCATE fx.invocation, fx.log RESTART IDENTITY;
SELECT fx_deploy('on-order', 'true') AS version;
CREATE TABLE orders_t (id int PRIMARY KEY, item text, qty int);
CREATE VIEW orders_v AS SELECT * FROM orders_t;

-- Every change of a row, keyed by its id, with the old and new row.
SELECT fx_on_change('orders_t', 'on-order', key => 'id');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders_t'::regclass;
INSERT INTO orders_t VALUES (1, 'widget', 2);
UPDATE orders_t SET qty = 3 WHERE id = 1;
DELETE FROM orders_t WHERE id = 1;
SELECT id, fn, key, args->>'op' AS op, args->>'table' AS tbl, args->'old' AS old, args->'new' AS new
  FROM fx.invocation ORDER BY id;
-- A change rolled back invokes nothing.
BEGIN;
INSERT INTO orders_t VALUES (2, 'gadget', 1);
SELECT count(*) AS inside FROM fx.invocation;
ROLLBACK;
SELECT count(*) AS after_rollback FROM fx.invocation;
-- Several rows in one statement: one invocation each.
INSERT INTO orders_t SELECT g, 'bulk', g FROM generate_series(10, 12) g;
SELECT key, args->'new'->>'qty' AS qty FROM fx.invocation WHERE args->>'op' = 'insert'
 ORDER BY id;

-- Again for the same table and function: replaced, here by inserts only
-- and no key.
SELECT fx_on_change('orders_t', 'on-order', '{insert}');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'orders_t'::regclass;
UPDATE orders_t SET qty = 0;
INSERT INTO orders_t VALUES (20, 'late', 1);
SELECT key IS NULL AS unkeyed, args->>'op' AS op FROM fx.invocation ORDER BY id DESC LIMIT 1;
SELECT count(*) AS updates_since FROM fx.invocation WHERE args->>'op' = 'update';

-- Bad input.
SELECT fx_on_change('orders_t', 'no-such-fn');
SELECT fx_on_change('orders_t', 'on-order', '{insert,truncate}');
SELECT fx_on_change('orders_t', 'on-order', '{}');
SELECT fx_on_change('orders_t', 'on-order', key => 'no_column');
SELECT fx_on_change('orders_v', 'on-order');
SELECT fx_on_change('no_such_table', 'on-order');
SELECT fx_on_change(NULL, 'on-order');

-- fx_off_change removes it; a second time there is nothing to remove.
SELECT fx_off_change('orders_t', 'on-order') AS removed;
SELECT fx_off_change('orders_t', 'on-order') AS removed_again;
INSERT INTO orders_t VALUES (30, 'quiet', 1);
SELECT count(*) AS invocations FROM fx.invocation;

-- Metering: finished attempts as fx.usage and fx.stats see them.
CREATE TEMP TABLE lease AS SELECT id, epoch, token FROM fx.claim('w', 100);
SELECT count(*) AS accepted FROM fx.finish('w', (SELECT jsonb_agg(jsonb_build_object(
	'id', id, 'epoch', epoch, 'token', token, 'ok', id % 4 <> 0, 'error', 'boom',
	'retryable', false, 'wall_ms', 100 * id, 'cpu_ms', 10 * id, 'max_rss_kb', 1000 + id,
	'start', CASE WHEN id = 1 THEN 'cold' ELSE 'warm' END)) FROM lease));
SELECT fn, invocations, errors, gb_seconds, cpu_seconds FROM fx.usage;
SELECT fn, invocations, errors, p50_ms, p95_ms, p99_ms, cold_start_rate, max_rss_kb FROM fx.stats;
