--
-- Who may do what (README.md, "Security model"), tried as several roles:
-- alice deploys, bob and carol invoke, dave has no fx role, an
-- administrator and a worker.  SET SESSION AUTHORIZATION acts as each,
-- as a login would.
--
SET client_min_messages = warning;
\set VERBOSITY default
TRUNCATE fx.invocation, fx.log RESTART IDENTITY;
CREATE ROLE sec_alice LOGIN IN ROLE fx_deployer;
CREATE ROLE sec_erin LOGIN IN ROLE fx_deployer;
CREATE ROLE sec_bob LOGIN IN ROLE fx_invoker;
CREATE ROLE sec_carol LOGIN IN ROLE fx_invoker;
CREATE ROLE sec_dave LOGIN;
CREATE ROLE sec_admin LOGIN IN ROLE fx_admin;
CREATE ROLE sec_worker LOGIN IN ROLE fx_worker;
CREATE ROLE sec_fn_role LOGIN;
CREATE ROLE sec_team;
GRANT sec_team TO sec_carol;
RESET client_min_messages;

-- The roles fx made, and what each is a member of.
SELECT r.rolname, r.rolcanlogin,
	   array(SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.roleid
			  WHERE a.member = r.oid ORDER BY 1) AS member_of
  FROM pg_roles r WHERE r.rolname IN ('fx_admin', 'fx_deployer', 'fx_invoker', 'fx_worker')
 ORDER BY 1;

-- alice deploys and owns; she invokes her own function without a grant.
SET SESSION AUTHORIZATION sec_alice;
SELECT fx_deploy('sec-fn', 'echo hi') AS version;
SELECT name, owner FROM fx.function WHERE name = 'sec-fn';
SELECT fx_invoke('sec-fn', '{"by": "alice"}') AS alice_id;
-- Her function's sql may run only as a role she is a member of.
SELECT fx_deploy('sec-sql', 'true', NULL, '{"role": "sec_fn_role"}');

-- bob may neither deploy nor invoke what is not granted to him, nor grant it.
SET SESSION AUTHORIZATION sec_bob;
SELECT fx_deploy('bob-fn', 'echo bob');
SELECT fx_invoke('sec-fn', '{"by": "bob"}');
SELECT fx_invoke_all('sec-fn', ARRAY['{"by": "bob"}']::jsonb[]);
SELECT fx_grant('sec-fn', 'sec_bob');
-- fx.invoke_as is for workers, not a way around the grant.
SET fx.invoke_as = 'sec_alice';
SELECT fx_invoke('sec-fn', '{"by": "bob as alice"}');
RESET fx.invoke_as;
-- He sees no invocation, no code, no state, no secret.
SELECT count(*) AS invocations FROM fx.invocation;
SELECT count(*) AS versions FROM fx.version;
SELECT count(*) AS versions_listed FROM fx.version_list;
SELECT count(*) AS states FROM fx.state;
SELECT fx_status(1);
SELECT fx_cancel(1);
SELECT fx_logs(1);
SELECT * FROM fx.secret;
-- Nor is he a worker.
SELECT * FROM fx.claim('bob', 1);
SELECT fx.finish('bob', '[]');

-- alice grants it to bob, and to a group carol is in.
SET SESSION AUTHORIZATION sec_alice;
SELECT fx_grant('sec-fn', 'sec_bob');
SELECT fx_grant('sec-fn', 'sec_bob');		-- again: no change
SELECT fx_grant('sec-fn', 'sec_team');
SELECT fx_grant('sec-fn', 'no_such_role');
SELECT fx_grant('no-such-fn', 'sec_bob');
SELECT fn, grantee, granted_by FROM fx.grants ORDER BY fn, grantee;

SET SESSION AUTHORIZATION sec_bob;
SELECT fx_invoke('sec-fn', '{"by": "bob"}') AS bob_id;
SET SESSION AUTHORIZATION sec_carol;
SELECT fx_invoke('sec-fn', '{"by": "carol"}') AS carol_id;
-- Each sees the invocations made for it (and its groups), not the others'.
SELECT id, args->>'by' AS by, invoker FROM fx.invocation ORDER BY id;
SET SESSION AUTHORIZATION sec_bob;
SELECT id, args->>'by' AS by, invoker FROM fx.invocation ORDER BY id;
SELECT fx_status(2) AS bob_status;
SELECT fx_status(3) AS carols;
SELECT fx_cancel(3) AS cancel_carols;
SELECT fx_cancel(2) AS cancel_his_own;
-- The owner sees every invocation of her function.
SET SESSION AUTHORIZATION sec_alice;
SELECT id, args->>'by' AS by, invoker, status FROM fx.invocation ORDER BY id;

-- Revoked: bob invokes no more, but still sees what he made.
SELECT fx_revoke('sec-fn', 'sec_bob') AS revoked;
SELECT fx_revoke('sec-fn', 'sec_bob') AS revoked_again;
SET SESSION AUTHORIZATION sec_bob;
SELECT fx_invoke('sec-fn', '{"by": "bob"}');
SELECT count(*) AS his FROM fx.invocation;

-- Another deployer may not deploy over alice's function, nor grant it.
SET SESSION AUTHORIZATION sec_erin;
SELECT fx_deploy('sec-fn', 'echo hijacked');
SELECT fx_grant('sec-fn', 'sec_erin');
SELECT fx_alias('sec-fn', 'stable', 1);
SELECT fx_deploy('erin-fn', 'echo erin') AS version;

-- PUBLIC: every role that may use fx_invoke.
SET SESSION AUTHORIZATION sec_alice;
SELECT fx_grant('sec-fn', 'public');
SET SESSION AUTHORIZATION sec_erin;
SELECT fx_invoke('sec-fn', '{"by": "erin"}') > 0 AS erin_invokes;
SET SESSION AUTHORIZATION sec_alice;
SELECT fx_revoke('sec-fn', 'PUBLIC') AS revoked;

-- dave, with no fx role, may use nothing of fx.
SET SESSION AUTHORIZATION sec_dave;
SELECT fx_invoke('sec-fn', '{}');
SELECT fx_status(1);
SELECT count(*) FROM fx.invocation;

-- Secrets: alice keeps one and gives it to her function.
SET SESSION AUTHORIZATION sec_alice;
SELECT fx_secret_set('api_key', 'sk-live-1234567890');
SELECT fx_secret_grant('api_key', 'sec-fn');
SELECT name, owner, functions FROM fx.secrets;
-- Nobody but administrators and workers reads a value back, not even its owner.
SELECT value FROM fx.secret;
SELECT * FROM fx.secrets_for('sec-fn');
-- Names are file names; values are bounded.
SELECT fx_secret_set('../etc/passwd', 'x');
SELECT fx_secret_set('big', repeat('x', 65537));
SELECT fx_secret_set(NULL, 'x');
-- She may not give it to erin's function; erin may neither change it nor take it.
SELECT fx_secret_grant('api_key', 'erin-fn');
SET SESSION AUTHORIZATION sec_erin;
SELECT fx_secret_set('api_key', 'stolen');
SELECT fx_secret_grant('api_key', 'erin-fn');
SELECT fx_secret_delete('api_key');
SET SESSION AUTHORIZATION sec_bob;
SELECT fx_secret_set('bobs', 'x');
-- An administrator and a worker read it.
SET SESSION AUTHORIZATION sec_admin;
SELECT name, value FROM fx.secret;
SET SESSION AUTHORIZATION sec_worker;
SELECT * FROM fx.secrets_for('sec-fn');
SELECT count(*) AS worker_sees FROM fx.invocation;
SELECT count(*) AS worker_claims FROM fx.claim('sec-w', 0);
-- The administrator sees and changes everything.
SET SESSION AUTHORIZATION sec_admin;
SELECT count(*) AS admin_sees FROM fx.invocation;
SELECT fx_alias('sec-fn', 'stable', 1);
SELECT fx_secret_revoke('api_key', 'sec-fn') AS revoked;
SELECT fx_secret_delete('api_key') AS deleted;
-- and invocations by the worker for another role (a schedule's owner, a
-- token's) are checked and recorded for that role.
SET SESSION AUTHORIZATION sec_worker;
SET fx.invoke_as = 'sec_bob';
SELECT fx_invoke('sec-fn', '{"by": "worker for bob"}');
SET fx.invoke_as = 'sec_alice';
SELECT fx_invoke('sec-fn', '{"by": "worker for alice"}') > 0 AS queued;
SELECT cardinality(fx_invoke_all('sec-fn', ARRAY['{"by": "worker for alice, batch"}']::jsonb[])) AS queued;
RESET fx.invoke_as;
SELECT args->>'by' AS by, invoker FROM fx.invocation WHERE args->>'by' LIKE 'worker%' ORDER BY id;
RESET SESSION AUTHORIZATION;

-- Every SECURITY DEFINER function of fx pins its search_path.
SELECT p.oid::regprocedure AS unpinned
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'fx'
 WHERE p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%');
-- What PUBLIC may run: only what row-level security, the triggers and a
-- function's sql (fenced by the lease token) need.
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'fx'
 WHERE has_function_privilege('sec_dave', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
-- and no table.
SELECT c.oid::regclass AS public_table
  FROM pg_class c WHERE c.relnamespace = 'fx'::regnamespace AND c.relkind IN ('r', 'v')
   AND has_table_privilege('sec_dave', c.oid, 'SELECT');

SET client_min_messages = warning;
DELETE FROM fx.function WHERE name IN ('sec-fn', 'sec-sql', 'erin-fn');
TRUNCATE fx.invocation, fx.log RESTART IDENTITY;
DROP ROLE sec_alice, sec_erin, sec_bob, sec_carol, sec_dave, sec_admin, sec_worker,
	sec_fn_role, sec_team;
