--
-- Workflows: recorded steps, children, messages, events, eviction, cancel,
-- resume and fork.  The worker's side is played by hand with fx.claim and
-- the step functions a worker calls.
--
SET client_min_messages = warning;
\set VERBOSITY terse
TRUNCATE fx.invocation, fx.log, fx.step, fx.message, fx.event RESTART IDENTITY;
SELECT fx_deploy('wf', 'true', options => '{"retries": 1}') AS version;
SELECT fx_deploy('wf-child', 'true') AS version;
SELECT fx_invoke('wf', '{"order": 7}') AS w \gset
CREATE TEMP TABLE lease AS SELECT id, token, replay FROM fx.claim('w1', 1);
SELECT id = :w AS claimed, replay AS first_run_replays FROM lease;

-- An inline step is recorded once; a worker without the lease records nothing.
SELECT fx.step_done('w1', token, :w, 1, 'reserve', 'run', '{"stock": 3}') AS recorded FROM lease;
SELECT fx.step_done('w1', gen_random_uuid(), :w, 2, 'forged', 'run', '1') AS forged_token;
SELECT fx.step_done('w2', token, :w, 2, 'forged', 'run', '1') AS other_owner FROM lease;
SELECT fx.step_done('w1', token, :w, 1, 'reserve', 'run', '"again"') AS again FROM lease;
-- A failed step is recorded with its error: a replay raises it again.
SELECT fx.step_done('w1', token, :w, 2, 'charge', 'run', NULL, 'card declined', 'PaymentError')
  FROM lease;
SELECT step, name, kind, done, output, error FROM fx_workflow_steps(:w);

-- A child is started once, however often its step is replayed.
SELECT fx.start_child('w1', token, :w, 3, 'call', 'wf-child', '{"n": 1}', 4242) AS c
  FROM lease \gset
SELECT fx.start_child('w1', token, :w, 3, 'call', 'wf-child', '{"n": 1}', 4242) = :c AS same_child
  FROM lease;
SELECT fx.start_child('w1', gen_random_uuid(), :w, 4, 'call', 'wf-child', '{}', 1) AS forged;
SELECT fn, args, parent = :w AS is_child, waiter, idempotency_key = 'fx-wf-' || :w || '-3' AS key
  FROM fx.invocation WHERE id = :c;
SELECT count(*) AS children FROM fx.invocation WHERE parent = :w;
-- Waiting for it: it has not ended, so the step stays waiting.
SELECT t.status IS NULL AS still_running
  FROM lease, fx.await_child('w1', lease.token, :w, 3, 'call', :c, 4343) t;
SELECT waiter AS new_waiter FROM fx.invocation WHERE id = :c;
-- The child runs and succeeds; now the step ends with its result.
CREATE TEMP TABLE child_lease AS SELECT id, epoch, token FROM fx.claim('w2', 1);
SELECT count(*) AS accepted FROM child_lease, fx.finish('w2', jsonb_build_array(jsonb_build_object(
	'id', id, 'epoch', epoch, 'token', token, 'ok', true, 'result', '{"charged": 5}'::jsonb)));
SELECT t.status, t.result, t.error
  FROM lease, fx.await_child('w1', lease.token, :w, 3, 'call', :c, 4343) t;
SELECT step, kind, done, output, child = :c AS its_child FROM fx.step
 WHERE invocation_id = :w AND step = 3;
-- Only a workflow's own children can be awaited.
SELECT * FROM lease, fx.await_child('w1', lease.token, :w, 4, 'await', :w, 1) t;

-- Messages: taken once each, oldest first, per topic.
SELECT fx_send(:w, 'paid', '{"amount": 5}');
SELECT fx_send(:w, 'paid', '{"amount": 6}');
SELECT fx_send(:w, 'other', '"x"');
SELECT t.taken, t.payload FROM lease, fx.recv_take('w1', lease.token, :w, 4, 'paid', NULL) t;
-- The same step again (a replay) gets its record, and takes nothing more.
SELECT t.taken, t.payload FROM lease, fx.recv_take('w1', lease.token, :w, 4, 'paid', NULL) t;
SELECT t.taken, t.payload FROM lease, fx.recv_take('w1', lease.token, :w, 5, 'paid', NULL) t;
-- Nothing left on the topic: the step is recorded as waiting, with its timeout.
SELECT t.taken, t.payload
  FROM lease, fx.recv_take('w1', lease.token, :w, 6, 'paid', now() + interval '1 minute') t;
SELECT step, kind, done, wake_at > now() AS has_timeout, topic FROM fx.step
 WHERE invocation_id = :w AND step = 6;
SELECT topic, payload, taken_step FROM fx.message WHERE workflow_id = :w ORDER BY id;
SELECT fx_send(:w + 1000, 'paid', '1');
SELECT fx_send(NULL, 'paid', '1');

-- Events: set by a step, read from SQL.
SELECT fx_get_event(:w, 'status') IS NULL AS not_set_yet;
SELECT fx.set_event_step('w1', token, :w, 6, 'status', '"charged"') AS recorded FROM lease;
SELECT fx_get_event(:w, 'status') AS status;
SELECT fx_get_event(:w, 'status', '1s') AS status_waited;
SELECT fx_get_event(:w + 1000, 'status');

-- Eviction: the workflow gives its sandbox up and is queued again, to
-- replay when its wait is over; the attempt does not count.
SELECT attempts AS attempts_before FROM fx.invocation WHERE id = :w;
SELECT fx.step_wait('w1', token, :w, 7, 'sleep', now() + interval '1 hour') AS waiting FROM lease;
SELECT fx.evict('w1', token, :w, now() + interval '1 hour', NULL, NULL,
				'[[0, "stdout", "going to sleep"]]') AS evicted FROM lease;
SELECT status, attempts, replay, not_before > now() + interval '59 minutes' AS due_in_an_hour,
	   lease_owner, lease_token
  FROM fx.invocation WHERE id = :w;
SELECT line FROM fx_logs(:w);
SELECT fx.evict('w1', token, :w, NULL, NULL, NULL) AS evicted_twice FROM lease;
-- Claimed again (made due), it replays.
UPDATE fx.invocation SET not_before = now() WHERE id = :w;
TRUNCATE lease;
INSERT INTO lease SELECT id, token, replay FROM fx.claim('w1', 1);
SELECT id = :w AS claimed, replay FROM lease;
-- Evicted waiting for a message, it stays queued until one is sent.
SELECT fx.evict('w1', token, :w, NULL, 'shipped', NULL) FROM lease;
SELECT not_before = 'infinity' AS waits_for_ever FROM fx.invocation WHERE id = :w;
SELECT fx_send(:w, 'shipped', '{"tracking": "T1"}');
SELECT not_before <= now() AS due_now FROM fx.invocation WHERE id = :w;
-- A message that came before the eviction makes it due at once.
TRUNCATE lease;
INSERT INTO lease SELECT id, token, replay FROM fx.claim('w1', 1);
SELECT fx.evict('w1', token, :w, now() + interval '1 hour', 'shipped', NULL) FROM lease;
SELECT not_before <= now() AS due_now FROM fx.invocation WHERE id = :w;

-- Cancel: the workflow and its children that have not ended.
TRUNCATE lease;
INSERT INTO lease SELECT id, token, replay FROM fx.claim('w1', 1);
SELECT fx.start_child('w1', token, :w, 8, 'start', 'wf-child', '{"n": 2}', NULL) AS c2
  FROM lease \gset
SELECT fx_workflow_cancel(:w) AS cancelled;
SELECT id = :w AS is_workflow, status FROM fx.invocation WHERE id IN (:w, :c, :c2) ORDER BY id;
SELECT fx_workflow_cancel(:w + 1000);

-- Resume: queued again from its last recorded step, with the children
-- cancelled with it; only an ended, unsucceeded workflow can be resumed.
SELECT fx_workflow_resume(:w) = :w AS resumed;
SELECT id = :w AS is_workflow, status, attempts, replay FROM fx.invocation
 WHERE id IN (:w, :c, :c2) ORDER BY id;
SELECT fx_workflow_resume(:w);
SELECT fx_workflow_resume(:w + 1000);

-- Fork: a new workflow with the steps before from_step recorded.
SELECT fx_workflow_fork(:w, 3) AS f \gset
SELECT fn, args, status, replay FROM fx.invocation WHERE id = :f;
SELECT step, name, kind, done, output, error FROM fx_workflow_steps(:f);
SELECT fx_workflow_fork(:w, 0);
SELECT fx_workflow_fork(:w, 40);
SELECT fx_workflow_fork(:w + 1000, 1);
SELECT fx_workflow_steps(:w + 1000);

-- fx_invoke's timeout: a deadline from the enqueue; it must be positive.
SELECT fx_invoke('wf', '{}', timeout => '90 s') AS t \gset
SELECT deadline - created_at AS timeout FROM fx.invocation WHERE id = :t;
SELECT fx_invoke('wf', '{}', timeout => '0 s');
SELECT fx_invoke('wf', '{}', timeout => '-1 s');
SELECT fx.timeout_error('2.5 s'), fx.timeout_error('1 minute');
