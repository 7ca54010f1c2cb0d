--
-- Per-key state, the deploy option "role", and what a function's role may
-- call.  The worker's side is played by hand with fx.claim and fx.finish.
--
SET client_min_messages = warning;
CREATE ROLE state_fn LOGIN;
CREATE ROLE state_nologin;

-- The role a function's sql runs as must exist, log in and not be superuser.
SELECT fx_deploy('st-bad', 'true', NULL, '{"role": "no_such_role"}');
SELECT fx_deploy('st-bad', 'true', NULL, '{"role": "state_nologin"}');
SELECT fx_deploy('st-bad', 'true', NULL, format('{"role": "%s"}', current_user)::jsonb);
-- nor be able to SET ROLE to a superuser.
CREATE ROLE state_sneaky LOGIN;
DO $$ BEGIN EXECUTE format('GRANT %I TO state_sneaky', current_user); END $$;
SELECT fx_deploy('st-bad', 'true', NULL, '{"role": "state_sneaky"}');
DROP ROLE state_sneaky;
SELECT fx_deploy('st-bad', 'true', NULL, '{"role": 7}');
SELECT fx_deploy('st-bad', 'true', NULL, '{"role": ""}');
SELECT count(*) AS nothing_deployed FROM fx.function WHERE name = 'st-bad';

SELECT fx_deploy('st', 'true', NULL, '{"role": "state_fn"}');
SELECT options->>'role' AS role FROM fx.version WHERE fn = 'st';

-- fx_state: unknown function, no state yet.
SELECT fx_state('st-missing', 'k');
SELECT fx_state('st', 'k1') IS NULL AS no_state_yet;
SELECT fx_state(NULL, 'k1') IS NULL AS null_in_null_out;

-- A succeeded attempt writes its state with its completion.
SELECT fx_invoke('st', '{"n": 1}', key => 'k1') > 0 AS queued;
CREATE TEMP TABLE lease AS SELECT id, epoch, token FROM fx.claim('w', 10);
SELECT count(*) AS claimed, bool_and(token IS NOT NULL) AS has_token FROM lease;
SELECT count(*) AS accepted FROM fx.finish('w', (SELECT jsonb_agg(jsonb_build_object(
	'id', id, 'epoch', epoch, 'token', token, 'ok', true, 'result', 1,
	'state_op', 'set', 'state', '{"items": ["apple"]}'::jsonb)) FROM lease));
SELECT fx_state('st', 'k1');
SELECT bucket = fx.bucket('st', 'k1') AS same_bucket_as_invocation FROM fx.state;

-- A failed attempt's state write is dropped.
TRUNCATE lease;
SELECT fx_invoke('st', '{"n": 2}', key => 'k1') > 0 AS queued;
INSERT INTO lease SELECT id, epoch, token FROM fx.claim('w', 10);
SELECT count(*) AS accepted FROM fx.finish('w', (SELECT jsonb_agg(jsonb_build_object(
	'id', id, 'epoch', epoch, 'token', token, 'ok', false, 'error', 'boom',
	'state_op', 'set', 'state', '"lost"'::jsonb)) FROM lease));
SELECT fx_state('st', 'k1') AS unchanged;

-- Retried and succeeded with a delete: the state is gone.
UPDATE fx.invocation SET not_before = now() WHERE status = 'queued';
TRUNCATE lease;
INSERT INTO lease SELECT id, epoch, token FROM fx.claim('w', 10);
SELECT count(*) AS accepted FROM fx.finish('w', (SELECT jsonb_agg(jsonb_build_object(
	'id', id, 'epoch', epoch, 'token', token, 'ok', true, 'result', 2, 'state_op', 'delete')) FROM lease));
SELECT fx_state('st', 'k1') IS NULL AS deleted;

-- A function's role may call fx.finish_tx (fenced by the token) and
-- nothing else of the worker's interface.
GRANT fx_invoker TO state_fn;
SET ROLE state_fn;
SELECT fx.finish_tx('w', gen_random_uuid(), '{"id": 1, "epoch": 1, "ok": true}') AS forged;
SELECT * FROM fx.claim('w', 1);
SELECT fx.reap();
SELECT * FROM fx.state;
-- It may enqueue invocations of its owner's functions in its transaction:
-- they exist if and only if that transaction commits.
BEGIN;
SELECT fx_invoke('st', '{"child": true}', key => 'k2') > 0 AS enqueued;
ROLLBACK;
SELECT fx_invoke('st', '{"child": true}', key => 'k2') > 0 AS enqueued;
RESET ROLE;
SELECT count(*) AS children FROM fx.invocation WHERE args ? 'child';
-- Another role may not.
CREATE ROLE state_other IN ROLE fx_invoker;
SET ROLE state_other;
SELECT fx_invoke('st', '{}');
RESET ROLE;
DROP ROLE state_other;

-- A key's backlog: only its head is claimable (the rest are blocked, out of
-- the claim index); the head's end unblocks the next.
SELECT fx_invoke('st', '{"q": 1}', key => 'kq') > 0 AS queued;
SELECT fx_invoke('st', '{"q": 2}', key => 'kq') > 0 AS queued;
SELECT fx_invoke('st', '{"q": 3}', key => 'kq') > 0 AS queued;
SELECT args->>'q' AS q, status, blocked FROM fx.invocation WHERE key = 'kq' ORDER BY id;
SELECT fx_cancel(min(id)) AS cancelled_head FROM fx.invocation WHERE key = 'kq';
SELECT args->>'q' AS q, status, blocked FROM fx.invocation WHERE key = 'kq' ORDER BY id;
-- A blocked row whose head ended unseen (while it was being enqueued) is
-- unblocked by fx.reap's sweep.
UPDATE fx.invocation SET status = 'cancelled' WHERE key = 'kq' AND args->>'q' = '2';
SELECT fx.reap() >= 0 AS reaped;
SELECT args->>'q' AS q, status, blocked FROM fx.invocation WHERE key = 'kq' ORDER BY id;

DROP ROLE state_nologin;
