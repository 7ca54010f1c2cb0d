/*
 * fx 0.1: serverless functions inside PostgreSQL.
 *
 * Vocabulary (also in README.md):
 *   function    a named program; each deploy makes an immutable version
 *   invocation  one request to run a function version with JSON args
 *   attempt     one claimed execution of an invocation by a worker
 *   lease       a worker's claim on an invocation: owner, epoch, backend pid,
 *               and a random token that only the claiming worker knows
 *
 * Invariants:
 *   - An invocation exists if and only if the transaction that enqueued it
 *     committed (fx_invoke is a plain INSERT; the wake-up NOTIFY is
 *     delivered at commit).
 *   - Every completion, failure or release of a running invocation is
 *     fenced by (lease_owner, lease_epoch), and a completion also by the
 *     lease's token: a worker whose lease was taken over, or whose claim
 *     was lost in a crash, changes nothing.
 *   - Every invocation row carries bucket, a shard key in 0..4095 derived
 *     from (fn, key) by fx.bucket(); unkeyed invocations get a random one.
 *
 * Tables live in schema fx; the user functions fx_* live in the schema the
 * extension is created in (public by default) so that they are callable
 * unqualified.
 */
\echo Use "CREATE EXTENSION fx" to load this file. \quit

CREATE SCHEMA fx;

/* Status values; mirrored by fx_status_names[] in include/fx/fx_common.h. */
CREATE TYPE fx.status AS ENUM (
	'queued',		/* waiting to be claimed (maybe not before not_before) */
	'running',		/* claimed by a worker under a lease */
	'succeeded',	/* finished with a result */
	'failed',		/* failed, and no retry was allowed */
	'dead',			/* failed on its last allowed attempt */
	'cancelled'		/* cancelled by fx_cancel before it finished */
);

CREATE TABLE fx.function (
	name		text PRIMARY KEY,
	owner		name NOT NULL DEFAULT current_user,
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fx.version (
	fn			text NOT NULL REFERENCES fx.function (name) ON DELETE CASCADE,
	version		int NOT NULL,
	bundle		bytea NOT NULL,			/* a tar archive, unpacked at /fn */
	hash		text NOT NULL,			/* sha256 of bundle, hex */
	command		text[] NOT NULL,		/* argv, run in the bundle directory */
	mode		text NOT NULL CHECK (mode IN ('simple', 'session')),
	memory_mb	int NOT NULL CHECK (memory_mb > 0),
	timeout_ms	int NOT NULL CHECK (timeout_ms > 0),
	retries		int NOT NULL CHECK (retries >= 0),
	options		jsonb NOT NULL,			/* every option, normalised */
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (fn, version)
);

CREATE TABLE fx.alias (
	fn			text NOT NULL,
	alias		text NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_-]*$'),
	version		int NOT NULL,
	PRIMARY KEY (fn, alias),
	FOREIGN KEY (fn, version) REFERENCES fx.version (fn, version) ON DELETE CASCADE
);

CREATE TABLE fx.invocation (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	bucket			int NOT NULL,		/* 0..4095: fx.bucket() or random */
	fn				text NOT NULL,
	version			int NOT NULL,
	key				text,
	queue			text,
	idempotency_key	text,
	args			jsonb NOT NULL,
	status			fx.status NOT NULL DEFAULT 'queued',
	blocked			boolean NOT NULL DEFAULT false,	/* queued behind an earlier one of its key */
	priority		int NOT NULL DEFAULT 0,
	not_before		timestamptz NOT NULL DEFAULT now(),
	attempts		int NOT NULL DEFAULT 0,	/* claims so far */
	max_attempts	int NOT NULL,		/* 1 + the version's retries */
	lost			int NOT NULL DEFAULT 0,	/* attempts lost with their worker */
	lease_owner		text,
	lease_epoch		int NOT NULL DEFAULT 0,
	lease_token		uuid,			/* secret of the current lease: a finish must carry it */
	lease_pid		int,
	lease_expiry	timestamptz,
	waiter			int,			/* backend pid of a waiting fx_call or workflow */
	parent			bigint,			/* the workflow that started it as a step */
	deadline		timestamptz,	/* fx_invoke's timeout: fails if not finished by then */
	replay			boolean NOT NULL DEFAULT false,	/* has recorded steps from an earlier run */
	result			jsonb,
	error			text,
	error_detail	text,
	worker			text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	started_at		timestamptz,
	finished_at		timestamptz,
	wall_ms			double precision,
	cpu_ms			double precision,
	max_rss_kb		bigint,
	start_kind		text,			/* cold, prewarmed or warm */
	invoker			regrole NOT NULL DEFAULT current_user::text::regrole	/* the role it was enqueued for */
	/*
	 * (fn, version) names a row of fx.version, which fx_invoke resolved in
	 * the same statement; versions are immutable and never deleted.  No
	 * foreign key: its per-row trigger and row lock on fx.version would cost
	 * more than the rest of an enqueue.  For the same reason the columns
	 * that only fx's own code sets carry no CHECK constraints: every
	 * INSERT would parse them again.
	 */
);

/* The hot path: only queued rows are indexed for claiming. */
CREATE INDEX invocation_ready ON fx.invocation ((-priority::bigint), id)
	WHERE status = 'queued' AND NOT blocked;
CREATE INDEX invocation_delayed ON fx.invocation (not_before)
	WHERE status = 'queued' AND NOT blocked;
/*
 * With id, a worker's lookup of one of its leases (lease_owner and id) is
 * one index probe, not a walk over all of its leases' entries, which a
 * long-held snapshot keeps.
 */
CREATE INDEX invocation_running ON fx.invocation (lease_owner, id)
	WHERE status = 'running';
/*
 * Newest first: "is an earlier one of its key queued or running?" starts
 * at the row itself and stops at the first one it meets, instead of
 * stepping over the whole history of the key, whose dead index entries a
 * long-held snapshot keeps (fx.reap asks it for every blocked row).
 */
CREATE INDEX invocation_key ON fx.invocation (fn, key, id DESC)
	WHERE key IS NOT NULL AND status IN ('queued', 'running');
CREATE INDEX invocation_blocked ON fx.invocation (fn, key, id)
	WHERE blocked;
CREATE UNIQUE INDEX invocation_idempotency ON fx.invocation (fn, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
/*
 * A function's invocations, newest first.  Partial (fn is never null) so
 * that only a query naming a function can use it: else a plan made while
 * the table was empty could read all of it to find rows by id, where the
 * primary key finds each with one probe (fx.claim, fx.finish).
 */
CREATE INDEX invocation_fn ON fx.invocation (fn, id) WHERE fn IS NOT NULL;
CREATE INDEX invocation_deadline ON fx.invocation (deadline)
	WHERE deadline IS NOT NULL AND status = 'queued';

/*
 * Per-key state of keyed functions: one JSON value per (fn, key), written
 * only by the completion of an invocation of that key (its single writer),
 * in the same transaction.
 */
CREATE TABLE fx.state (
	fn				text NOT NULL,
	key				text NOT NULL,
	bucket			int NOT NULL,	/* fx.bucket(fn, key), as its invocations */
	value			jsonb NOT NULL,
	invocation_id	bigint NOT NULL,	/* the invocation that wrote it last */
	updated_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (fn, key)
);

CREATE TABLE fx.log (
	invocation_id	bigint NOT NULL,
	attempt			int NOT NULL,
	seq				int NOT NULL,
	stream			text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'fx')),
	at				timestamptz NOT NULL,
	line			text NOT NULL,
	PRIMARY KEY (invocation_id, attempt, seq)
);

/*
 * The shard bucket of (fn, key): fixed forever, since data placement on a
 * distributed PostgreSQL depends on it.
 */
CREATE FUNCTION fx.bucket(fn text, key text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT (hashtextextended(fn || '/' || key, 0) & 4095)::int
$$;

/* ---------------------------------------------------------------------
 * User functions implemented in C (see extension/)
 * --------------------------------------------------------------------- */

CREATE FUNCTION fx_deploy(name text, bundle bytea, command text[] DEFAULT NULL,
						  options jsonb DEFAULT '{}')
RETURNS int
AS 'MODULE_PATHNAME', 'fx_deploy_bundle'
LANGUAGE C VOLATILE;

CREATE FUNCTION fx_deploy(name text, source text, command text[] DEFAULT NULL,
						  options jsonb DEFAULT '{}')
RETURNS int
AS 'MODULE_PATHNAME', 'fx_deploy_source'
LANGUAGE C VOLATILE;

CREATE FUNCTION fx_invoke(fn text, args jsonb DEFAULT '{}', key text DEFAULT NULL,
						  delay interval DEFAULT NULL,
						  idempotency_key text DEFAULT NULL,
						  queue text DEFAULT NULL, priority int DEFAULT 0,
						  timeout interval DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'fx_invoke'
LANGUAGE C VOLATILE;

/*
 * fx_invoke for each element of args in one INSERT (ids in args' order):
 * the enqueue of a batch, several times faster than fx_invoke over a set.
 */
CREATE FUNCTION fx_invoke_all(fn text, args jsonb[], delay interval DEFAULT NULL,
							  queue text DEFAULT NULL, priority int DEFAULT 0,
							  timeout interval DEFAULT NULL)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'fx_invoke_all'
LANGUAGE C VOLATILE;

CREATE FUNCTION fx_call(fn text, args jsonb DEFAULT '{}',
						timeout interval DEFAULT '30s', key text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'fx_call'
LANGUAGE C VOLATILE;

CREATE FUNCTION fx_result(id bigint, wait interval DEFAULT '0')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'fx_result'
LANGUAGE C VOLATILE STRICT;

/* ---------------------------------------------------------------------
 * User functions implemented in SQL
 * --------------------------------------------------------------------- */

CREATE FUNCTION fx_status(id bigint) RETURNS text
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s fx.status;
BEGIN
	SELECT i.status INTO s FROM fx.invocation i WHERE i.id = fx_status.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invocation % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN s::text;
END
$$;

CREATE FUNCTION fx_cancel(id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s fx.status;
	w int;
BEGIN
	SELECT i.status, i.waiter INTO s, w FROM fx.invocation i
	 WHERE i.id = fx_cancel.id AND fx.sees(fx.caller(), i.invoker, i.fn) FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invocation % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	IF s NOT IN ('queued', 'running') THEN
		RETURN false;
	END IF;
	UPDATE fx.invocation i
	   SET status = 'cancelled', finished_at = now(),
		   error = 'cancelled', lease_owner = NULL, lease_pid = NULL,
		   lease_token = NULL
	 WHERE i.id = fx_cancel.id;
	PERFORM fx.unblock_next(i.fn, i.key) FROM fx.invocation i
	  WHERE i.id = fx_cancel.id AND i.key IS NOT NULL;
	/* A workflow waiting for it, evicted, runs on. */
	PERFORM fx.wake(ARRAY[i.parent]) FROM fx.invocation i
	  WHERE i.id = fx_cancel.id AND i.parent IS NOT NULL;
	IF s = 'running' THEN
		/* The worker running it kills the attempt when this commits. */
		PERFORM pg_notify('fx_cancel', id::text);
	END IF;
	IF w IS NOT NULL THEN
		PERFORM pg_notify('fx_done_' || w, id::text);
	END IF;
	RETURN true;
END
$$;

CREATE FUNCTION fx_logs(id bigint)
RETURNS TABLE (attempt int, at timestamptz, stream text, line text)
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = fx_logs.id) THEN
		RAISE EXCEPTION 'invocation % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN QUERY
		SELECT l.attempt, l.at, l.stream, l.line FROM fx.log l
		 WHERE l.invocation_id = fx_logs.id
		 ORDER BY l.attempt, l.seq;
END
$$;

CREATE FUNCTION fx_alias(fn text, alias text, version int) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	fn_owner name;
BEGIN
	SELECT f.owner INTO fn_owner FROM fx.function f WHERE f.name = fx_alias.fn FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'function "%" is not deployed', fx_alias.fn
			USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT fx.owns(fx.caller(), fx_alias.fn) THEN
		RAISE EXCEPTION 'must be owner of function "%"', fx_alias.fn
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Function "%s" belongs to role "%s".', fx_alias.fn, fn_owner);
	END IF;
	IF fx_alias.alias !~ '^[a-z][a-z0-9_-]*$' THEN
		RAISE EXCEPTION 'invalid alias "%"', fx_alias.alias
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'An alias starts with a lower-case letter and has only lower-case letters, digits, "_" and "-".';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fx.version v
				   WHERE v.fn = fx_alias.fn AND v.version = fx_alias.version) THEN
		RAISE EXCEPTION 'function "%" has no version %', fx_alias.fn, fx_alias.version
			USING ERRCODE = 'undefined_object',
				  HINT = format('SELECT * FROM fx.version_list WHERE fn = %L lists its versions.', fx_alias.fn);
	END IF;
	INSERT INTO fx.alias AS a (fn, alias, version)
		VALUES (fx_alias.fn, fx_alias.alias, fx_alias.version)
		ON CONFLICT ON CONSTRAINT alias_pkey DO UPDATE SET version = EXCLUDED.version;
END
$$;

CREATE VIEW fx.version_list AS
	SELECT v.fn, v.version, v.hash, v.command, v.mode, v.memory_mb,
		   v.timeout_ms, v.retries, length(v.bundle) AS bundle_bytes,
		   array(SELECT a.alias FROM fx.alias a
				  WHERE a.fn = v.fn AND a.version = v.version ORDER BY 1) AS aliases,
		   v.created_at
	  FROM fx.version v;

/* ---------------------------------------------------------------------
 * Worker interface: claim, finish, reap, release.  Only workers call these.
 * --------------------------------------------------------------------- */

/*
 * Claim up to n runnable invocations for owner, in order of priority, then
 * age.  The scan starts after (after_priority, after_id), the cursor: the
 * last one a claim of this worker took.  A long-held snapshot keeps the
 * index entries of every claimed row, and a scan from the start of the
 * queue steps over all of them; one from the cursor only over those
 * claimed since.  Two kinds of rows that rank before the cursor are
 * claimed all the same, in their order:
 *   - the ids in also: fx.cycle names the next invocation of each key
 *     whose invocation it has just finished;
 *   - new ones of a higher priority than the cursor's (id > after_id): the
 *     older entries of those priorities fail the index condition on id,
 *     so the scan does not visit their rows.
 * Others (a retry or a delayed one come due, a woken workflow, one that
 * fx.reap requeued, one that committed after a later one was claimed) are
 * found by a claim without a cursor, which the worker makes on wake-ups,
 * when something comes due and on its tick, as often as its cost allows
 * (worker/fx_worker.c).  The caller's session must have application_name
 * = owner: fx.reap() treats a lease whose backend is gone (or no longer
 * carries that name) as lost with its worker.
 *
 * Single writer: a keyed invocation is runnable only when no earlier
 * invocation of the same (fn, key) is queued (including one waiting to be
 * retried) or running, so a key's invocations run one at a time in enqueue
 * order.  One that ends dead or cancelled no longer holds the key back.
 * A concurrent claimer that holds the earlier row still shows it as queued
 * or running, so two claimers cannot both take a key.
 *
 * So that a long backlog of one key costs nothing to skip, fx_invoke marks
 * a keyed invocation blocked when an earlier one of its key is queued or
 * running, and only unblocked rows are indexed for claiming; the end of a
 * key's invocation unblocks the next (fx.unblock_next), and fx.reap sweeps
 * up a row whose head ended while it was being enqueued.  The key rule
 * above is checked all the same.
 */
CREATE FUNCTION fx.claim(owner text, n int, lease_slack interval DEFAULT '30s',
						 after_priority int DEFAULT NULL, after_id bigint DEFAULT NULL,
						 also bigint[] DEFAULT NULL, overdue interval DEFAULT NULL)
RETURNS TABLE (id bigint, epoch int, fn text, version int, args jsonb,
			   key text, attempt int, idempotency_key text, hash text,
			   command text[], mode text, memory_mb int, timeout_ms int,
			   options jsonb, token uuid, priority int, replay boolean, deadline timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
/*
 * The plan must not depend on the queue's statistics.  A session keeps
 * the generic plan it made at its sixth call, often on an empty queue,
 * and statistics say the queue is empty until autovacuum analyzes it
 * again (a new install, a burst): plans made then sorted every queued row
 * to take the first n, or read all of fx.invocation to find the picked
 * rows, a claim 7 times slower at 20,000 queued.  So each part of the
 * queue is read in its index's order and stops at its limit, and rows are
 * found by primary key (id = ANY below; invocation_fn cannot serve it),
 * one probe each.  The disabled paths' costs would set off JIT
 * compilation, 400 ms a claim: jit is off.  Regress claim_cursor checks
 * the rows a claim reads.
 */
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH named AS (
		/*
		 * By id only: the status test is written so that no partial index
		 * of queued rows matches it, since a plan made while the table was
		 * small would read such an index whole.
		 */
		SELECT q.id, q.priority FROM fx.invocation q
		 WHERE cardinality(also) > 0 AND q.id = ANY (also)
		   AND (q.status = 'queued' AND NOT q.blocked) IS TRUE AND q.not_before <= now()
		   AND (q.deadline IS NULL OR q.deadline > now())	/* else fx.reap fails it */
		   AND (q.key IS NULL OR NOT EXISTS (
				SELECT 1 FROM fx.invocation e
				 WHERE e.fn = q.fn AND e.key = q.key AND e.id < q.id
				   AND e.status IN ('queued', 'running')))
		 FOR UPDATE SKIP LOCKED
	), higher AS (
		SELECT q.id, q.priority FROM fx.invocation q
		 WHERE after_id IS NOT NULL
		   AND q.status = 'queued' AND NOT q.blocked AND q.not_before <= now()
		   AND (q.deadline IS NULL OR q.deadline > now())
		   AND -q.priority::bigint < -after_priority::bigint AND q.id > after_id
		   AND (q.key IS NULL OR NOT EXISTS (
				SELECT 1 FROM fx.invocation e
				 WHERE e.fn = q.fn AND e.key = q.key AND e.id < q.id
				   AND e.status IN ('queued', 'running')))
		 ORDER BY -q.priority::bigint, q.id
		 LIMIT n
		 FOR UPDATE SKIP LOCKED
	), onward AS (
		SELECT q.id, q.priority FROM fx.invocation q
		 WHERE q.status = 'queued' AND NOT q.blocked AND q.not_before <= now()
		   AND (q.deadline IS NULL OR q.deadline > now())
		   AND (-q.priority::bigint, q.id) > (coalesce(-after_priority::bigint, -2147483649),
											  coalesce(after_id, 0))
		   AND (q.key IS NULL OR NOT EXISTS (
				SELECT 1 FROM fx.invocation e
				 WHERE e.fn = q.fn AND e.key = q.key AND e.id < q.id
				   AND e.status IN ('queued', 'running')))
		 ORDER BY -q.priority::bigint, q.id
		 LIMIT n - (SELECT count(*) FROM higher)
		 FOR UPDATE SKIP LOCKED
	), overdue AS (
		/*
		 * No starvation: given overdue (workers pass 2 s), a claim from the
		 * start of the queue gives one in eight of its places (at least
		 * one) to the invocations that have waited longest, more than
		 * overdue past their time, whatever their priority, so that a flood
		 * of higher priorities slows the lower ones down but never stops
		 * them.
		 */
		SELECT q.id, q.priority FROM fx.invocation q
		 WHERE after_id IS NULL AND overdue IS NOT NULL
		   AND q.status = 'queued' AND NOT q.blocked AND q.not_before <= now() - overdue
		   AND (q.deadline IS NULL OR q.deadline > now())
		   AND (q.key IS NULL OR NOT EXISTS (
				SELECT 1 FROM fx.invocation e
				 WHERE e.fn = q.fn AND e.key = q.key AND e.id < q.id
				   AND e.status IN ('queued', 'running')))
		 ORDER BY q.not_before
		 LIMIT least(n, greatest(1, n / 8))
		 FOR UPDATE SKIP LOCKED
	), picked AS (
		/*
		 * The overdue ones, then the first of the others up to n; the rest
		 * (at most as many as named and overdue) are not taken.
		 */
		SELECT o.id FROM overdue o
		UNION ALL
		(SELECT u.id FROM (SELECT * FROM named UNION SELECT * FROM higher
						   UNION SELECT * FROM onward) u
		  WHERE u.id NOT IN (SELECT o.id FROM overdue o)
		  ORDER BY -u.priority::bigint, u.id
		  LIMIT n - (SELECT count(*) FROM overdue))
	), claimed AS (
		/* No join here: a clause on i.fn would let invocation_fn be read whole. */
		UPDATE fx.invocation i
		   SET status = 'running', attempts = i.attempts + 1,
			   lease_owner = owner, lease_epoch = i.lease_epoch + 1,
			   lease_token = gen_random_uuid(),
			   lease_pid = pg_backend_pid(), worker = owner,
			   started_at = now(), error = NULL, error_detail = NULL,
			   lease_expiry = now() + lease_slack
							  + (SELECT v.timeout_ms FROM fx.version v
								  WHERE v.fn = i.fn AND v.version = i.version) * interval '1 ms'
		 WHERE i.id = ANY (ARRAY(SELECT p.id FROM picked p))
		RETURNING i.id, i.lease_epoch, i.fn, i.version, i.args, i.key, i.attempts,
				  i.idempotency_key, i.priority, i.lease_token,
				  i.replay OR i.attempts > 1 AS replay, i.deadline
	)
	SELECT c.id, c.lease_epoch, c.fn, c.version, c.args, c.key, c.attempts,
		   coalesce(c.idempotency_key, 'fx-' || c.id), v.hash, v.command,
		   v.mode, v.memory_mb, v.timeout_ms, v.options, c.lease_token, c.priority,
		   c.replay, c.deadline
	  FROM claimed c
	  JOIN fx.version v ON v.fn = c.fn AND v.version = c.version
	 ORDER BY c.priority DESC, c.id;
END
$$;

/* The code bundle of a version, fetched by a worker that has not cached it. */
CREATE FUNCTION fx.bundle(fn text, version int) RETURNS bytea
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT v.bundle FROM fx.version v WHERE v.fn = $1 AND v.version = $2
$$;

/* Unblock the first queued or running invocation of (fn, key), if blocked. */
CREATE FUNCTION fx.unblock_next(fn text, key text) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE fx.invocation b SET blocked = false
	 WHERE b.id = (SELECT e.id FROM fx.invocation e
					WHERE e.fn = $1 AND e.key = $2 AND e.status IN ('queued', 'running')
					ORDER BY e.id LIMIT 1)
	   AND b.blocked
$$;

/*
 * Finish attempts, fenced by (owner, epoch, token).  items is a JSON array of
 *   {"id", "epoch", "token", "ok": bool, "result", "error", "detail",
 *    "retryable": bool, "wall_ms", "cpu_ms", "max_rss_kb", "start",
 *    "logs": [[at_epoch_ms, stream, line], ...],
 *    "state_op": "set" | "delete", "state": value, "lost": bool}
 * A succeeded keyed invocation's state_op is applied to fx.state in the
 * same statement; a failed one's is dropped.  "lost": the attempt failed
 * because the worker lost its database connection (its sql's session), not
 * because of the function: it is queued again at once without counting,
 * as fx.reap does for an attempt lost with its worker, at most 3 times.
 * A failed attempt is retried with exponential backoff while attempts
 * remain (lost attempts do not count), else it ends 'dead'.  It ends
 * 'failed' at once when no retry is allowed: the function said its error is
 * not retryable, or the invocation allowed one attempt (fx_call).  Returns the ids that were accepted;
 * an item whose lease moved on is ignored, and so are its logs.
 */
CREATE FUNCTION fx.finish(owner text, items jsonb, backoff_ms int DEFAULT 1000)
RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
/* Items reach their rows by primary key (id = ANY below): see fx.claim. */
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
	finished bigint[];
	keyed boolean;
	parents bigint[];
	late bigint[];
BEGIN
	WITH it AS (
		SELECT * FROM jsonb_to_recordset(items) AS x(
			id bigint, epoch int, token uuid, ok boolean, result jsonb, error text,
			detail text, retryable boolean, wall_ms double precision,
			cpu_ms double precision, max_rss_kb bigint, start text, logs jsonb, log_seq int,
			state_op text, state jsonb, lost boolean)
	), done AS (
		UPDATE fx.invocation i
		   SET status = CASE
					WHEN it.ok THEN 'succeeded'::fx.status
					WHEN it.lost AND i.lost < 2 AND coalesce(i.deadline > clock_timestamp(), true)
						THEN 'queued'
					WHEN NOT coalesce(it.retryable, true) OR i.max_attempts = 1
						 OR i.deadline <= clock_timestamp()
						THEN 'failed'
					WHEN i.attempts - i.lost < i.max_attempts THEN 'queued'
					ELSE 'dead' END,
			   result = CASE WHEN it.ok THEN it.result END,
			   error = CASE WHEN NOT it.ok AND i.deadline <= clock_timestamp()
							THEN fx.timeout_error(i.deadline - i.created_at) ELSE it.error END,
			   error_detail = CASE WHEN NOT it.ok AND i.deadline <= clock_timestamp()
								   THEN 'The last attempt: ' || coalesce(it.error, '?')
								   ELSE it.detail END,
			   lost = i.lost + CASE WHEN NOT it.ok AND it.lost AND i.lost < 2
										 AND coalesce(i.deadline > clock_timestamp(), true)
									THEN 1 ELSE 0 END,
			   not_before = CASE
					WHEN it.ok OR (it.lost AND i.lost < 2) THEN i.not_before
					ELSE now() + least(backoff_ms * (2.0 ^ (i.attempts - i.lost - 1)), 3600000)
								 * interval '1 ms' END,
			   finished_at = CASE
					WHEN NOT it.ok AND it.lost AND i.lost < 2
						 AND coalesce(i.deadline > clock_timestamp(), true) THEN NULL
					WHEN it.ok OR NOT coalesce(it.retryable, true) OR i.max_attempts = 1
						 OR i.attempts - i.lost >= i.max_attempts
						 OR i.deadline <= clock_timestamp() THEN clock_timestamp() END,
			   wall_ms = it.wall_ms, cpu_ms = it.cpu_ms,
			   max_rss_kb = it.max_rss_kb, start_kind = it.start,
			   lease_owner = NULL, lease_pid = NULL, lease_expiry = NULL,
			   lease_token = NULL
		  FROM it
		 WHERE i.id = ANY (ARRAY(SELECT x.id FROM it x))
		   AND i.id = it.id AND i.lease_owner = owner AND i.lease_epoch = it.epoch
		   AND i.lease_token = it.token
		   /*
		    * Found by id (the primary key), one probe per item: not through
		    * invocation_running, whose entries for every past lease of this
		    * worker a long-held snapshot keeps ("IS TRUE" keeps the planner
		    * from matching that index's predicate; no sequential scan below).
		    */
		   AND (i.status = 'running') IS TRUE
		RETURNING i.id, i.attempts, i.status, i.waiter, i.result, i.parent,
				  NOT it.ok AND i.deadline <= clock_timestamp() AS late, it.log_seq,
				  i.fn, i.key, i.bucket, it.state_op, it.state, it.logs
	), stated AS (
		INSERT INTO fx.state AS s (fn, key, bucket, value, invocation_id)
		SELECT d.fn, d.key, d.bucket, d.state, d.id FROM done d
		 WHERE d.status = 'succeeded' AND d.key IS NOT NULL
		   AND d.state_op = 'set' AND d.state IS NOT NULL
		ON CONFLICT (fn, key) DO UPDATE
		   SET value = EXCLUDED.value, invocation_id = EXCLUDED.invocation_id,
			   updated_at = now()
		RETURNING 1
	), unstated AS (
		DELETE FROM fx.state s USING done d
		 WHERE d.status = 'succeeded' AND d.state_op = 'delete'
		   AND s.fn = d.fn AND s.key = d.key
		RETURNING 1
	), logged AS (
		INSERT INTO fx.log (invocation_id, attempt, seq, stream, at, line)
		SELECT d.id, d.attempts, coalesce(d.log_seq, 0) + l.ord::int, l.e->>1,
			   to_timestamp((l.e->>0)::double precision / 1000), l.e->>2
		  FROM done d,
			   jsonb_array_elements(CASE WHEN jsonb_typeof(d.logs) = 'array'
										 THEN d.logs ELSE '[]' END)
			   WITH ORDINALITY AS l(e, ord)
		/* lines a live batch (fx.log_append) may also have stored */
		ON CONFLICT (invocation_id, attempt, seq) DO NOTHING
		RETURNING 1
	), notified AS (
		/* fx_call's payload: "ID", or "ID RESULT" when the result fits */
		SELECT count(pg_notify('fx_done_' || d.waiter,
							   d.id::text || CASE WHEN d.status = 'succeeded'
												   AND coalesce(octet_length(d.result::text), 0) < 7900
												  THEN ' ' || coalesce(d.result::text, 'null')
												  ELSE '' END)) AS n
		  FROM done d WHERE d.waiter IS NOT NULL AND d.status <> 'queued'
	)
	SELECT coalesce(array_agg(d.id), '{}'), coalesce(bool_or(d.key IS NOT NULL), false),
		   array_agg(d.parent) FILTER (WHERE d.parent IS NOT NULL AND d.status <> 'queued'),
		   coalesce(array_agg(d.id) FILTER (WHERE d.late), '{}')
	  INTO finished, keyed, parents, late
	  FROM done d, notified;
	IF parents IS NOT NULL THEN
		PERFORM fx.wake(parents);
	END IF;
	/* A workflow past its deadline takes its unfinished children with it. */
	IF cardinality(late) > 0 THEN
		PERFORM @extschema@.fx_workflow_cancel(c.id)
		   FROM fx.invocation c
		  WHERE c.parent = ANY (late) AND c.status IN ('queued', 'running');
	END IF;
	/*
	 * Unblock the next invocation of each key that finished: a statement
	 * of its own, since it must see the statuses just written.
	 */
	IF keyed THEN
		UPDATE fx.invocation b SET blocked = false
		  FROM (SELECT DISTINCT i.fn, i.key FROM fx.invocation i
				 WHERE i.id = ANY (finished) AND i.key IS NOT NULL) k
		 WHERE b.id = (SELECT e.id FROM fx.invocation e
						WHERE e.fn = k.fn AND e.key = k.key AND e.status IN ('queued', 'running')
						ORDER BY e.id LIMIT 1)
		   AND b.blocked;
	END IF;
	RETURN QUERY SELECT unnest(finished);
END
$$;

/*
 * One round trip of a busy worker: finish what it has finished, then claim
 * up to n more, in one transaction (one commit for both).  The claim also
 * takes the next invocation of each key that finished here (its finish
 * unblocked it), though it ranks before the cursor: keyed items carry
 * "fn" and "key" for this.
 *
 * The worker commits a cycle that only claims without waiting for the disk
 * (synchronous_commit off, set around this call: a SET inside it would end
 * with it).  Lost in a crash, such a claim leaves its invocations queued;
 * the attempts the worker began meanwhile are refused at finish, since
 * every lease has a token of its own, and run again.
 */
CREATE FUNCTION fx.cycle(owner text, items jsonb, n int, backoff_ms int DEFAULT 1000,
						 lease_slack_ms int DEFAULT 30000,
						 after_priority int DEFAULT NULL, after_id bigint DEFAULT NULL,
						 overdue_ms int DEFAULT NULL)
RETURNS TABLE (id bigint, epoch int, fn text, version int, args jsonb,
			   key text, attempt int, idempotency_key text, hash text,
			   command text[], mode text, memory_mb int, timeout_ms int,
			   options jsonb, token uuid, priority int, replay boolean, deadline timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nexts bigint[];
BEGIN
	IF jsonb_array_length(items) > 0 THEN
		PERFORM count(*) FROM fx.finish(owner, items, backoff_ms);
		IF n > 0 THEN
			/* keyed items carry their fn and key */
			nexts := ARRAY(SELECT x.id FROM jsonb_to_recordset(items) AS it(id bigint, fn text, key text),
								  LATERAL (SELECT e.id FROM fx.invocation e
											WHERE e.fn = it.fn AND e.key = it.key AND e.id > it.id
											  AND e.status = 'queued'
											ORDER BY e.id LIMIT 1) x
							WHERE it.key IS NOT NULL);
		END IF;
	END IF;
	IF n > 0 THEN
		RETURN QUERY SELECT * FROM fx.claim(owner, n, lease_slack_ms * interval '1 ms',
											after_priority, after_id, nexts,
											overdue_ms * interval '1 ms');
	END IF;
END
$$;

/*
 * Give back claimed invocations (a draining worker, or one whose process
 * could not start): fenced like fx.finish, the attempt does not count.
 */
CREATE FUNCTION fx.release(owner text, ids bigint[], epochs int[])
RETURNS int
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH it AS (SELECT * FROM unnest(ids, epochs) AS x(id, epoch)),
	rel AS (
		UPDATE fx.invocation i
		   SET status = 'queued', attempts = i.attempts - 1,
			   lease_owner = NULL, lease_pid = NULL, lease_expiry = NULL,
			   lease_token = NULL
		  FROM it
		 WHERE i.id = it.id AND i.lease_owner = owner
		   AND i.lease_epoch = it.epoch AND i.status = 'running'
		RETURNING 1
	)
	SELECT count(*)::int FROM rel
$$;

/*
 * A reconnected worker takes back the leases it still holds, so that
 * fx.reap() does not count its new backend as a lost worker.
 */
CREATE FUNCTION fx.adopt(owner text) RETURNS int
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH a AS (
		UPDATE fx.invocation i SET lease_pid = pg_backend_pid()
		 WHERE i.status = 'running' AND i.lease_owner = owner
		RETURNING 1
	)
	SELECT count(*)::int FROM a
$$;

/*
 * Log lines of a running attempt, sent while it runs (fx logs -f follows
 * them); lines first_seq + 1, ... of the attempt.  Only the worker holding
 * the lease adds them.  Returns how many were stored.
 */
CREATE FUNCTION fx.log_append(owner text, token uuid, id bigint, attempt int, first_seq int,
							  lines jsonb)
RETURNS int
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH ins AS (
		INSERT INTO fx.log (invocation_id, attempt, seq, stream, at, line)
		SELECT $3, $4, $5 + l.ord::int, l.e->>1,
			   to_timestamp((l.e->>0)::double precision / 1000), l.e->>2
		  FROM jsonb_array_elements($6) WITH ORDINALITY AS l(e, ord)
		 WHERE EXISTS (SELECT 1 FROM fx.invocation i
						WHERE i.id = $3 AND i.lease_owner = $1 AND i.lease_token = $2
						  AND i.status = 'running')
		RETURNING 1
	)
	SELECT count(*)::int FROM ins
$$;

/*
 * Requeue invocations whose worker is gone: its backend has exited (a
 * worker killed with SIGKILL loses its session at once) or the lease
 * expired.  Three lost attempts make the invocation dead.  Workers call
 * this on their slow tick; it is cheap when nothing is lost.
 */
CREATE FUNCTION fx.timeout_error(timeout interval) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
	SELECT 'timed out: not finished within '
		   || rtrim(rtrim(round(extract(epoch FROM $1)::numeric, 3)::text, '0'), '.')
		   || ' s of its enqueue'
$$;

CREATE FUNCTION fx.reap() RETURNS int
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
/*
 * Every worker runs this each tick, and keeps the plans its session made
 * on a queue that statistics said was empty (fx.claim says why): read in
 * full, the table and its dead rows cost 37 ms a tick in a retry storm
 * before autovacuum came, on the connection that claims.  Each part has a
 * partial index that finds just its rows.
 */
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
	n int;
	parents bigint[];
	late record;
BEGIN
	WITH lost AS (
		SELECT i.id FROM fx.invocation i
		 WHERE i.status = 'running'
		   AND (i.lease_expiry < now()
				OR NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(i.lease_pid) a
							   WHERE a.application_name = i.lease_owner))
		 FOR UPDATE SKIP LOCKED
	), moved AS (
		UPDATE fx.invocation i
		   SET status = CASE WHEN i.lost >= 2 THEN 'dead'::fx.status ELSE 'queued' END,
			   lost = i.lost + 1,
			   error = 'worker lost during attempt ' || i.attempts,
			   finished_at = CASE WHEN i.lost >= 2 THEN now() END,
			   lease_owner = NULL, lease_pid = NULL, lease_expiry = NULL,
			   lease_token = NULL
		  FROM lost WHERE i.id = lost.id
		RETURNING i.id, i.status, i.waiter, i.parent
	)
	SELECT count(*)::int, array_agg(s.parent) FILTER (WHERE s.parent IS NOT NULL)
	  INTO n, parents FROM (
		SELECT CASE WHEN m.status = 'dead' AND m.waiter IS NOT NULL
					THEN pg_notify('fx_done_' || m.waiter, m.id::text) END,
			   CASE WHEN m.status = 'dead' THEN m.parent END AS parent
		  FROM moved m) s;
	IF parents IS NOT NULL THEN
		PERFORM fx.wake(parents);
	END IF;
	/*
	 * Invocations queued past their deadline (fx_invoke's timeout) fail, and
	 * their unfinished children are cancelled.  (A running one's worker kills
	 * it at the deadline; its finish then fails it the same way.)
	 */
	/* Their children first, as fx.finish locks a child before its parent. */
	PERFORM 1 FROM fx.invocation c
	  WHERE c.parent IN (SELECT l.id FROM fx.invocation l
						  WHERE l.status = 'queued' AND l.deadline < now())
		AND c.status IN ('queued', 'running')
	  ORDER BY c.id DESC
	  FOR UPDATE;
	FOR late IN
		UPDATE fx.invocation i
		   SET status = 'failed', finished_at = now(),
			   error = fx.timeout_error(i.deadline - i.created_at), error_detail = NULL
		 WHERE i.status = 'queued' AND i.deadline < now()
		RETURNING i.id, i.waiter, i.parent, i.fn, i.key
	LOOP
		IF late.waiter IS NOT NULL THEN
			PERFORM pg_notify('fx_done_' || late.waiter, late.id::text);
		END IF;
		IF late.parent IS NOT NULL THEN
			PERFORM fx.wake(ARRAY[late.parent]);
		END IF;
		PERFORM @extschema@.fx_workflow_cancel(c.id) FROM fx.invocation c
		  WHERE c.parent = late.id AND c.status IN ('queued', 'running');
		IF late.key IS NOT NULL THEN
			PERFORM fx.unblock_next(late.fn, late.key);
		END IF;
	END LOOP;
	/*
	 * Unblock the first invocation of every key with no head: its head
	 * died here, or ended while it was being enqueued.
	 */
	UPDATE fx.invocation b SET blocked = false
	 WHERE b.blocked AND b.status = 'queued'
	   AND NOT EXISTS (SELECT 1 FROM fx.invocation e
					   WHERE e.fn = b.fn AND e.key = b.key AND e.id < b.id
						 AND e.status IN ('queued', 'running'));
	RETURN n;
END
$$;

/* When the earliest delayed invocation becomes runnable (NULL: none). */
CREATE FUNCTION fx.next_due() RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT min(q.not_before) FROM fx.invocation q WHERE q.status = 'queued' AND NOT q.blocked
$$;

/*
 * Finish one attempt inside the invocation's own transaction: the one its
 * function's sql ran in, in a session of the function's role.  Fenced like
 * fx.finish and also by the lease's secret token, which only the worker
 * holding the lease knows, so a function cannot finish another
 * invocation.  Returns whether the completion was accepted; strict raises
 * FXL01 instead of returning false, so that the worker can send COMMIT in
 * the same round trip and a stale worker still commits none of the
 * function's writes.
 */
CREATE FUNCTION fx.finish_tx(owner text, token uuid, item jsonb,
							 backoff_ms int DEFAULT 1000, strict boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM 1 FROM fx.invocation i
	 WHERE i.id = (item->>'id')::bigint AND i.lease_token = token
	   AND i.lease_owner = owner AND i.status = 'running'
	   FOR UPDATE;
	IF FOUND AND EXISTS (SELECT 1 FROM fx.finish(owner, jsonb_build_array(
			item || jsonb_build_object('token', token)), backoff_ms)) THEN
		RETURN true;
	END IF;
	IF strict THEN
		/* the worker sends COMMIT right behind: this makes it roll back */
		RAISE EXCEPTION 'invocation % is no longer leased to %', item->>'id', owner
			USING ERRCODE = 'FXL01';
	END IF;
	RETURN false;
END
$$;

/*
 * Run by the worker when it opens the transaction a function's sql runs in,
 * in the function role's session: the deploy refused a superuser role, but
 * roles change, and a role that can SET ROLE to a superuser is one too.
 */
CREATE FUNCTION fx.assert_sql_role() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_roles r
			   WHERE r.rolsuper AND pg_has_role(current_user, r.oid, 'MEMBER')) THEN
		RAISE EXCEPTION 'role "%" is or can become a superuser: its sql does not run', current_user
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Give the function a role of its own that no superuser role is granted to.';
	END IF;
END
$$;

/* The limit on a state value, read by workers (fx.max_state_size). */
CREATE FUNCTION fx.max_state_size() RETURNS int
AS 'MODULE_PATHNAME', 'fx_max_state_size_fn'
LANGUAGE C STABLE;

/* The committed state of (fn, key); NULL when it has none. */
CREATE FUNCTION fx_state(fn text, key text) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v jsonb;
BEGIN
	SELECT s.value INTO v FROM fx.state s WHERE s.fn = fx_state.fn AND s.key = fx_state.key;
	IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM fx.function f WHERE f.name = fx_state.fn) THEN
		RAISE EXCEPTION 'function "%" is not deployed', fn
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN v;
END
$$;

/* ---------------------------------------------------------------------
 * Table triggers (fx_on_change) and metering views
 * --------------------------------------------------------------------- */

/*
 * The row trigger fx_on_change installs: it invokes TG_ARGV[0] with the
 * change as JSON ({"op", "table", "old", "new"}), keyed by the value of the
 * column TG_ARGV[1] when one was named, so that the changes of one row are
 * handled in order.  fx_invoke is transactional: a change rolled back
 * invokes nothing.  It runs as fx's owner, so whoever may write the table
 * triggers the invocation, as its owner set up.
 */
CREATE FUNCTION fx.on_change_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	change jsonb;
	k text;
BEGIN
	change := jsonb_build_object(
		'op', lower(TG_OP),
		'table', quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME),
		'old', CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
		'new', CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
	IF TG_ARGV[1] <> '' THEN
		k := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END->>TG_ARGV[1];
	END IF;
	/* for the role that installed the trigger (fx_invoke checks it may) */
	PERFORM set_config('fx.invoke_as', coalesce(TG_ARGV[2], ''), true);
	PERFORM @extschema@.fx_invoke(TG_ARGV[0], change, key => k);
	PERFORM set_config('fx.invoke_as', '', true);
	RETURN NULL;
END
$$;

/* The trigger's name for a function: one per (table, function). */
CREATE FUNCTION fx.on_change_name(fn text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT left('fx_on_change_' || $1, 63) $$;

/*
 * Invoke fn after every change of the given kinds to table's rows:
 * events is a subset of {insert,update,delete}; key names a column whose
 * value keys the invocations (changes of one row then run in order).
 * Calling it again for the same table and function replaces the trigger.
 */
CREATE FUNCTION fx_on_change(tbl regclass, fn text,
							 events text[] DEFAULT '{insert,update,delete}',
							 key text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
	ops text;
BEGIN
	IF tbl IS NULL OR fn IS NULL THEN
		RAISE EXCEPTION 'fx_on_change needs a table and a function'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM fx.function f WHERE f.name = fn) THEN
		RAISE EXCEPTION 'function "%" is not deployed', fn
			USING ERRCODE = 'undefined_object',
				  HINT = format('Deploy it with fx_deploy() or "fx deploy %s DIR".', fn);
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl
			USING ERRCODE = 'wrong_object_type';
	END IF;
	SELECT e INTO bad FROM unnest(events) e
	 WHERE e IS NULL OR lower(e) NOT IN ('insert', 'update', 'delete') LIMIT 1;
	IF FOUND OR coalesce(cardinality(events), 0) = 0 THEN
		RAISE EXCEPTION 'invalid event "%"', coalesce(bad, '')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'events is a non-empty subset of {insert,update,delete}.';
	END IF;
	IF key IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM pg_attribute a
			 WHERE a.attrelid = tbl AND a.attname = key AND a.attnum > 0 AND NOT a.attisdropped) THEN
		RAISE EXCEPTION 'table "%" has no column "%"', tbl, key
			USING ERRCODE = 'undefined_column',
				  HINT = 'key names the column whose value keys the invocations.';
	END IF;
	IF NOT fx.may_invoke(fx.caller(), fn) THEN
		RAISE EXCEPTION 'permission denied to invoke function "%"', fn
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'The trigger invokes it for the role that installs it.',
				  HINT = format('Its owner or an administrator can run: SELECT fx_grant(%L, %L);', fn, current_user);
	END IF;
	SELECT string_agg(DISTINCT upper(e), ' OR ') INTO ops FROM unnest(events) e;
	EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', fx.on_change_name(fn), tbl);
	EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH ROW'
				   ' EXECUTE FUNCTION fx.on_change_trigger(%L, %L, %L)',
				   fx.on_change_name(fn), ops, tbl, fn, coalesce(key, ''), current_user);
END
$$;

/* Remove the trigger fx_on_change made; whether there was one. */
CREATE FUNCTION fx_off_change(tbl regclass, fn text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger t
				   WHERE t.tgrelid = tbl AND t.tgname = fx.on_change_name(fn)) THEN
		RETURN false;
	END IF;
	EXECUTE format('DROP TRIGGER %I ON %s', fx.on_change_name(fn), tbl);
	RETURN true;
END
$$;

/*
 * Metering.  Every finished attempt records its wall time, CPU time, peak
 * memory and how its process started (cold: a new sandbox; prewarmed: a
 * new process in a ready sandbox; warm: a session process reused).
 * GB-seconds are wall seconds times the version's memory limit, as Lambda
 * bills them.
 */
CREATE VIEW fx.usage AS
	SELECT i.fn, date_trunc('hour', i.created_at) AS hour,
		   count(*) AS invocations,
		   count(*) FILTER (WHERE i.status IN ('failed', 'dead')) AS errors,
		   round(sum(coalesce(i.wall_ms, 0) / 1000.0 * v.memory_mb / 1024.0)::numeric, 6)
			   AS gb_seconds,
		   round((sum(coalesce(i.cpu_ms, 0)) / 1000.0)::numeric, 3) AS cpu_seconds
	  FROM fx.invocation i JOIN fx.version v ON v.fn = i.fn AND v.version = i.version
	 GROUP BY 1, 2;

CREATE VIEW fx.stats AS
	SELECT i.fn, count(*) AS invocations,
		   count(*) FILTER (WHERE i.status IN ('failed', 'dead')) AS errors,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY i.wall_ms) AS p50_ms,
		   percentile_cont(0.95) WITHIN GROUP (ORDER BY i.wall_ms) AS p95_ms,
		   percentile_cont(0.99) WITHIN GROUP (ORDER BY i.wall_ms) AS p99_ms,
		   round(avg(CASE WHEN i.start_kind = 'warm' THEN 0 ELSE 1 END)
				 FILTER (WHERE i.start_kind IS NOT NULL)::numeric, 4) AS cold_start_rate,
		   max(i.max_rss_kb) AS max_rss_kb
	  FROM fx.invocation i
	 WHERE i.finished_at IS NOT NULL
	 GROUP BY i.fn;

/* ---------------------------------------------------------------------
 * Workflows: steps, children, messages, events (docs/protocol.md,
 * "Workflows").  A workflow is an invocation that records steps; after any
 * crash it runs again from the start and its recorded steps return their
 * outcomes.  The worker records steps with asynchronous commits (see the
 * protocol's "Durability"); every write below is fenced by the lease
 * (owner and token) of the workflow's running attempt.
 * --------------------------------------------------------------------- */

CREATE TABLE fx.step (
	invocation_id	bigint NOT NULL,	/* the workflow */
	step			int NOT NULL,		/* 1, 2, ... in the order the code reached them */
	bucket			int NOT NULL,		/* its workflow's */
	name			text NOT NULL,		/* run: the code's name; else the kind or the child's fn */
	kind			text NOT NULL,		/* run, call, start, await, sleep, recv, send, set_event */
	done			boolean NOT NULL DEFAULT false,	/* false: still waiting */
	output			jsonb,
	error			text,				/* the step failed: replays raise it again */
	detail			text,
	child			bigint,				/* call, start, await */
	wake_at			timestamptz,		/* sleep: wake-up; recv: timeout */
	topic			text,				/* recv */
	started_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at		timestamptz,
	PRIMARY KEY (invocation_id, step)
);

/* Messages to workflows (fx_send, a step's send); recv takes each once. */
CREATE TABLE fx.message (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	workflow_id		bigint NOT NULL,
	topic			text NOT NULL,
	payload			jsonb,
	sender			bigint,				/* the sending workflow; NULL: SQL */
	created_at		timestamptz NOT NULL DEFAULT now(),
	taken_step		int					/* the recv step that took it */
);
CREATE INDEX message_waiting ON fx.message (workflow_id, topic, id) WHERE taken_step IS NULL;

/* Events a workflow publishes (set_event), read with fx_get_event. */
CREATE TABLE fx.event (
	workflow_id		bigint NOT NULL,
	key				text NOT NULL,
	value			jsonb,
	updated_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (workflow_id, key)
);

CREATE INDEX invocation_parent ON fx.invocation (parent) WHERE parent IS NOT NULL;

/*
 * Whether owner's attempt still holds the lease on workflow id, locking its
 * row: a worker whose lease moved on records nothing.
 */
CREATE FUNCTION fx.holds(owner text, token uuid, id bigint) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (SELECT 1 FROM fx.invocation i
				   WHERE i.id = $3 AND i.lease_owner = $1 AND i.lease_token = $2
					 AND i.status = 'running'
				   FOR UPDATE)
$$;

/*
 * Wake workflows waiting, evicted, for something that just happened (a
 * child ended, a message came): those queued for later run now.  The rows
 * are locked first, in id order, so that a wake racing with fx.evict is
 * settled by the lock (see there).
 */
CREATE FUNCTION fx.wake(ids bigint[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	woken int;
BEGIN
	PERFORM 1 FROM fx.invocation i WHERE i.id = ANY (ids) ORDER BY i.id FOR UPDATE;
	UPDATE fx.invocation i SET not_before = now()
	 WHERE i.id = ANY (ids) AND i.status = 'queued' AND i.not_before > now();
	GET DIAGNOSTICS woken = ROW_COUNT;
	IF woken > 0 THEN
		PERFORM pg_notify('fx_wake', '');
	END IF;
END
$$;

/* Record a step that ended (run, send, set_event, or a wait that ended). */
CREATE FUNCTION fx.step_done(owner text, token uuid, id bigint, step int, name text,
							 kind text, output jsonb, error text DEFAULT NULL,
							 detail text DEFAULT NULL, started timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	held boolean;
BEGIN
	/* One statement (the hot path of every inline step): fx.holds, then record. */
	WITH lease AS (
		SELECT i.id, i.bucket FROM fx.invocation i
		 WHERE i.id = id AND i.lease_owner = owner AND i.lease_token = token
		   AND i.status = 'running'
		   FOR UPDATE
	), rec AS (
		INSERT INTO fx.step AS s (invocation_id, step, bucket, name, kind, done, output,
								  error, detail, started_at, finished_at)
		SELECT l.id, step, l.bucket, name, kind, true, output, error, detail,
			   coalesce(started, clock_timestamp()), clock_timestamp()
		  FROM lease l
		ON CONFLICT ON CONSTRAINT step_pkey DO UPDATE
		   SET done = true, output = EXCLUDED.output, error = EXCLUDED.error,
			   detail = EXCLUDED.detail, finished_at = EXCLUDED.finished_at
		 WHERE NOT s.done
		RETURNING 1
	)
	SELECT EXISTS (SELECT 1 FROM lease) INTO held;
	RETURN held;
END
$$;

/*
 * Record an inline step from inside the workflow's own transaction, in the
 * session of its function's role, so that the sql the step ran commits with
 * its record; fenced by the lease's secret token, as fx.finish_tx.
 */
CREATE FUNCTION fx.step_tx(owner text, token uuid, id bigint, step int, name text,
						   output jsonb, started timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT fx.step_done(owner, token, id, step, name, 'run', output, NULL, NULL, started) THEN
		RAISE EXCEPTION 'invocation % is no longer leased to %', id, owner
			USING ERRCODE = 'FXL01';
	END IF;
END
$$;

/* Record a step that waits (sleep, recv): its wake-up or timeout first. */
CREATE FUNCTION fx.step_wait(owner text, token uuid, id bigint, step int, kind text,
							 wake_at timestamptz, topic text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RETURN false;
	END IF;
	INSERT INTO fx.step (invocation_id, step, bucket, name, kind, wake_at, topic)
	SELECT id, step, i.bucket, kind, kind, wake_at, topic
	  FROM fx.invocation i WHERE i.id = id
	ON CONFLICT ON CONSTRAINT step_pkey DO NOTHING;
	RETURN true;
END
$$;

/*
 * Start a child invocation as step `step` of workflow id (kind 'call' or
 * 'start'), once however often the step is replayed: its idempotency key is
 * fx-wf-<id>-<step>.  waiter (the worker's backend pid) is notified when it
 * ends.  Returns the child's id, or NULL if the lease moved on.
 */
CREATE FUNCTION fx.start_child(owner text, token uuid, id bigint, step int, kind text,
							   fn text, args jsonb, waiter int)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	child bigint;
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RETURN NULL;
	END IF;
	PERFORM set_config('fx.invoke_as', i.invoker::text, true) FROM fx.invocation i WHERE i.id = id;
	child := @extschema@.fx_invoke(fn, args, idempotency_key => 'fx-wf-' || id || '-' || step);
	PERFORM set_config('fx.invoke_as', '', true);
	UPDATE fx.invocation c SET parent = id, waiter = waiter WHERE c.id = child;
	INSERT INTO fx.step AS s (invocation_id, step, bucket, name, kind, done, output, child,
							  finished_at)
	SELECT id, step, i.bucket, fn, kind, kind = 'start',
		   CASE WHEN kind = 'start' THEN to_jsonb(child) END, child,
		   CASE WHEN kind = 'start' THEN clock_timestamp() END
	  FROM fx.invocation i WHERE i.id = id
	ON CONFLICT ON CONSTRAINT step_pkey DO NOTHING;
	RETURN child;
END
$$;

/*
 * Step `step` of workflow id (kind 'call' or 'await') waits for child: if
 * the child has ended, record the step's outcome and return it (status,
 * and result or error); if not, record the step as waiting (an await's
 * first time) and make waiter (the worker's backend pid) the child's waiter,
 * notified when it ends, and return a NULL status.
 */
CREATE FUNCTION fx.await_child(owner text, token uuid, id bigint, step int, kind text,
							   child bigint, waiter int,
							   OUT status text, OUT result jsonb, OUT error text,
							   OUT detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	c fx.invocation;
BEGIN
	SELECT * INTO c FROM fx.invocation i WHERE i.id = child AND i.parent = id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invocation % is not a child of workflow %', child, id
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF c.status IN ('queued', 'running') AND c.waiter IS DISTINCT FROM waiter THEN
		/*
		 * Its waiter changes: lock the child's row before the workflow's
		 * (fx.holds), the order in which fx.finish locks them when the child
		 * ends (the child, then its parent in fx.wake), so the two cannot
		 * deadlock.  Usually the waiter is already ours and nothing is
		 * locked: a lock would also make a claim skip the child.
		 */
		SELECT * INTO c FROM fx.invocation i WHERE i.id = child FOR UPDATE;
	END IF;
	IF NOT fx.holds(owner, token, id) THEN
		RAISE EXCEPTION 'invocation % is no longer leased to %', id, owner
			USING ERRCODE = 'FXL01';
	END IF;
	IF c.status IN ('queued', 'running') THEN
		INSERT INTO fx.step (invocation_id, step, bucket, name, kind, child)
		SELECT id, step, i.bucket, kind, kind, child FROM fx.invocation i WHERE i.id = id
		ON CONFLICT ON CONSTRAINT step_pkey DO NOTHING;
		IF c.waiter IS DISTINCT FROM waiter THEN
			UPDATE fx.invocation i SET waiter = waiter WHERE i.id = child;
		END IF;
		RETURN;
	END IF;
	status := c.status::text;
	IF c.status = 'succeeded' THEN
		result := coalesce(c.result, 'null');
	ELSE
		error := coalesce(c.error, c.status::text);
		detail := format('Child invocation %s of "%s" ended %s.', child, c.fn, c.status);
	END IF;
	INSERT INTO fx.step AS s (invocation_id, step, bucket, name, kind, done, output, error,
							  detail, child, finished_at)
	SELECT id, step, i.bucket, kind, kind, true, result, error, detail, child, clock_timestamp()
	  FROM fx.invocation i WHERE i.id = id
	ON CONFLICT ON CONSTRAINT step_pkey DO UPDATE
	   SET done = true, output = EXCLUDED.output, error = EXCLUDED.error,
		   detail = EXCLUDED.detail, finished_at = EXCLUDED.finished_at
	 WHERE NOT s.done;
END
$$;

/*
 * Step `step` of workflow id receives on topic: take the oldest message, and
 * record the step with its payload in the same transaction, so that a
 * message is taken exactly once; if there is none, record the step as
 * waiting until wake_at (its timeout; NULL: for ever), once.
 */
CREATE FUNCTION fx.recv_take(owner text, token uuid, id bigint, step int, topic text,
							 wake_at timestamptz, OUT taken boolean, OUT payload jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	m bigint;
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RAISE EXCEPTION 'invocation % is no longer leased to %', id, owner
			USING ERRCODE = 'FXL01';
	END IF;
	/* Taken before: the step's record says what (a message is taken once). */
	SELECT true, st.output INTO taken, payload FROM fx.step st
	 WHERE st.invocation_id = id AND st.step = step AND st.done;
	IF FOUND THEN
		RETURN;
	END IF;
	SELECT x.id, x.payload INTO m, payload FROM fx.message x
	 WHERE x.workflow_id = id AND x.topic = topic AND x.taken_step IS NULL
	 ORDER BY x.id LIMIT 1 FOR UPDATE SKIP LOCKED;
	taken := FOUND;
	IF taken THEN
		UPDATE fx.message x SET taken_step = step WHERE x.id = m;
		PERFORM fx.step_done(owner, token, id, step, 'recv', 'recv', coalesce(payload, 'null'));
	ELSE
		INSERT INTO fx.step (invocation_id, step, bucket, name, kind, wake_at, topic)
		SELECT id, step, i.bucket, 'recv', 'recv', wake_at, topic
		  FROM fx.invocation i WHERE i.id = id
		ON CONFLICT ON CONSTRAINT step_pkey DO NOTHING;
	END IF;
END
$$;

/* A workflow's send step: the message and the step in one transaction. */
CREATE FUNCTION fx.send_step(owner text, token uuid, id bigint, step int, dest bigint,
							 topic text, payload jsonb)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RETURN false;
	END IF;
	PERFORM fx.deliver(dest, topic, payload, id);
	RETURN fx.step_done(owner, token, id, step, 'send', 'send', 'null');
END
$$;

/* A workflow's set_event step. */
CREATE FUNCTION fx.set_event_step(owner text, token uuid, id bigint, step int, key text,
								  value jsonb)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RETURN false;
	END IF;
	INSERT INTO fx.event AS e (workflow_id, key, value) VALUES (id, key, value)
	ON CONFLICT ON CONSTRAINT event_pkey DO UPDATE SET value = EXCLUDED.value, updated_at = now();
	PERFORM pg_notify('fx_event', id || ' ' || key);
	RETURN fx.step_done(owner, token, id, step, 'set_event', 'set_event', 'null');
END
$$;

/*
 * Put a message for workflow dest and wake it: a running one's worker
 * hears fx_msg, an evicted one is queued to run now.  The workflow's row is
 * locked first, so that a send racing with fx.evict is settled by the lock.
 */
CREATE FUNCTION fx.deliver(dest bigint, topic text, payload jsonb, sender bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM 1 FROM fx.invocation i WHERE i.id = dest FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'workflow % does not exist', dest
			USING ERRCODE = 'undefined_object';
	END IF;
	INSERT INTO fx.message (workflow_id, topic, payload, sender)
		VALUES (dest, topic, payload, sender);
	PERFORM fx.wake(ARRAY[dest]);
	PERFORM pg_notify('fx_msg', dest::text);
END
$$;

/*
 * Give up the sandbox of a workflow whose wait goes on: queue it again
 * (the attempt does not count) to replay once the wait is over.  wake is
 * when at the latest (a sleep's wake-up, a recv's timeout; NULL: never by
 * itself); it runs at once if what it waits for has happened meanwhile.
 * The row is locked before that is checked: a fx.deliver or a child's end
 * that came first has committed by then, and one that comes later finds
 * the workflow queued and wakes it.
 */
CREATE FUNCTION fx.evict(owner text, token uuid, id bigint, wake timestamptz,
						 wait_topic text, wait_child bigint, logs jsonb DEFAULT NULL,
						 log_seq int DEFAULT 0)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
	ready boolean;
	att int;
BEGIN
	IF NOT fx.holds(owner, token, id) THEN
		RETURN false;
	END IF;
	ready := (wait_topic IS NOT NULL
			  AND EXISTS (SELECT 1 FROM fx.message x
						  WHERE x.workflow_id = id AND x.topic = wait_topic
							AND x.taken_step IS NULL))
		  OR (wait_child IS NOT NULL
			  AND EXISTS (SELECT 1 FROM fx.invocation c
						  WHERE c.id = wait_child AND c.status NOT IN ('queued', 'running')));
	UPDATE fx.invocation i
	   SET status = 'queued', attempts = i.attempts - 1, replay = true,
		   not_before = CASE WHEN ready THEN now()
							 ELSE least(coalesce(wake, 'infinity'), coalesce(i.deadline, 'infinity')) END,
		   lease_owner = NULL, lease_pid = NULL, lease_expiry = NULL, lease_token = NULL
	 WHERE i.id = id
	RETURNING i.attempts + 1 INTO att;
	INSERT INTO fx.log (invocation_id, attempt, seq, stream, at, line)
	SELECT id, att, log_seq + l.ord::int, l.e->>1,
		   to_timestamp((l.e->>0)::double precision / 1000), l.e->>2
	  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(logs) = 'array' THEN logs ELSE '[]' END)
		   WITH ORDINALITY AS l(e, ord);
	RETURN true;
END
$$;

/* ---- user functions ---- */

CREATE FUNCTION fx_send(workflow bigint, topic text, payload jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF workflow IS NULL OR topic IS NULL THEN
		RAISE EXCEPTION 'fx_send needs a workflow and a topic'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM fx.require_sees(workflow, 'workflow');
	PERFORM fx.deliver(workflow, topic, payload, NULL);
END
$$;

CREATE FUNCTION fx_get_event(workflow bigint, key text, wait interval DEFAULT '0')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'fx_get_event'
LANGUAGE C VOLATILE STRICT;

/* The steps a workflow recorded, in order. */
CREATE FUNCTION fx_workflow_steps(id bigint)
RETURNS TABLE (step int, name text, kind text, done boolean, output jsonb, error text,
			   child bigint, started_at timestamptz, finished_at timestamptz, ms double precision)
LANGUAGE plpgsql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = fx_workflow_steps.id) THEN
		RAISE EXCEPTION 'invocation % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN QUERY
		SELECT s.step, s.name, s.kind, s.done, s.output, s.error, s.child, s.started_at,
			   s.finished_at, extract(epoch FROM s.finished_at - s.started_at)::float8 * 1000
		  FROM fx.step s WHERE s.invocation_id = fx_workflow_steps.id
		 ORDER BY s.step;
END
$$;

/*
 * Cancel a workflow and every child of it (and theirs) that has not ended.
 * Returns how many invocations were cancelled.
 */
CREATE FUNCTION fx_workflow_cancel(id bigint) RETURNS int
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n int;
BEGIN
	PERFORM fx.require_sees(id, 'workflow');
	/* Children first (higher ids): a finishing child locks itself, then its parent. */
	WITH RECURSIVE tree AS (
		SELECT i.id FROM fx.invocation i WHERE i.id = fx_workflow_cancel.id
		UNION
		SELECT k.id FROM fx.invocation k JOIN tree t ON k.parent = t.id
	)
	SELECT count(*) FILTER (WHERE c) INTO n
	  FROM (SELECT @extschema@.fx_cancel(t.id) AS c FROM tree t ORDER BY t.id DESC) x;
	RETURN n;
END
$$;

/*
 * Run a cancelled, failed or dead workflow again from its last recorded
 * step: it is queued with its attempts counted from zero, and so are the
 * children that were cancelled with it.  Its recorded steps replay as
 * recorded (a recorded failure too); a step that was waiting waits again.
 */
CREATE FUNCTION fx_workflow_resume(id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s fx.status;
BEGIN
	PERFORM fx.require_sees(id, 'workflow');
	SELECT i.status INTO s FROM fx.invocation i WHERE i.id = fx_workflow_resume.id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'workflow % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	IF s NOT IN ('cancelled', 'failed', 'dead') THEN
		RAISE EXCEPTION 'workflow % is %, not cancelled, failed or dead', id, s
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Only a workflow that ended without succeeding can be resumed.';
	END IF;
	WITH RECURSIVE tree AS (
		SELECT i.id FROM fx.invocation i WHERE i.id = fx_workflow_resume.id
		UNION
		SELECT k.id FROM fx.invocation k JOIN tree t ON k.parent = t.id
		 WHERE k.status = 'cancelled'
	)
	UPDATE fx.invocation i
	   SET status = 'queued', attempts = 0, lost = 0, replay = true, not_before = now(),
		   error = NULL, error_detail = NULL, finished_at = NULL, result = NULL
	  FROM tree t
	 WHERE i.id = t.id;
	PERFORM pg_notify('fx_wake', '');
	RETURN id;
END
$$;

/*
 * A new workflow that starts as workflow id did, with its steps before
 * from_step already recorded (copied), and runs from there: e.g. with a fix
 * deployed as a new version.  version NULL: the function's live version.
 */
CREATE FUNCTION fx_workflow_fork(id bigint, from_step int, version int DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	src fx.invocation;
	fork bigint;
BEGIN
	PERFORM fx.require_sees(id, 'workflow');
	SELECT * INTO src FROM fx.invocation i WHERE i.id = fx_workflow_fork.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'workflow % does not exist', id
			USING ERRCODE = 'undefined_object';
	END IF;
	IF from_step IS NULL OR from_step < 1 THEN
		RAISE EXCEPTION 'from_step must be 1 or more, not %', coalesce(from_step::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Step 1 runs the whole workflow again; step N keeps the outcomes of steps 1 to N-1.';
	END IF;
	IF EXISTS (SELECT 1 FROM generate_series(1, from_step - 1) g(n)
			   WHERE NOT EXISTS (SELECT 1 FROM fx.step st
								 WHERE st.invocation_id = src.id AND st.step = g.n AND st.done)) THEN
		RAISE EXCEPTION 'workflow % has not recorded every step before step %', id, from_step
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = format('It recorded %s finished steps.',
								  (SELECT count(*) FROM fx.step st
								   WHERE st.invocation_id = src.id AND st.done));
	END IF;
	/* the fork is the caller's, who must be allowed to invoke the function */
	PERFORM set_config('fx.invoke_as', fx.caller()::regrole::text, true);
	fork := @extschema@.fx_invoke(src.fn || CASE WHEN version IS NULL THEN '' ELSE ':' || version END,
								  src.args, key => src.key, priority => src.priority);
	PERFORM set_config('fx.invoke_as', '', true);
	UPDATE fx.invocation i SET replay = true WHERE i.id = fork;
	INSERT INTO fx.step (invocation_id, step, bucket, name, kind, done, output, error, detail,
						 child, wake_at, topic, started_at, finished_at)
	SELECT fork, st.step, f.bucket, st.name, st.kind, true, st.output, st.error, st.detail,
		   st.child, st.wake_at, st.topic, st.started_at, st.finished_at
	  FROM fx.step st, fx.invocation f
	 WHERE st.invocation_id = src.id AND st.step < from_step AND f.id = fork;
	RETURN fork;
END
$$;

/* ---------------------------------------------------------------------
 * Schedules: run a function on a cron spec or an @every interval
 * (extension/fx_cron.c parses the specs).  Workers enqueue the ticks on
 * their own tick (fx.fire_schedules), each tick once however many workers
 * run, with the idempotency key fx-schedule-<name>-<tick in Unix seconds>.
 * --------------------------------------------------------------------- */

/* The first tick of spec strictly after `after` (UTC). */
CREATE FUNCTION fx.cron_next(spec text, after timestamptz) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'fx_cron_next'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

/* The last tick of spec at or before `at`: cron_prev(s, t) <= t < cron_next(s, t). */
CREATE FUNCTION fx.cron_prev(spec text, at timestamptz) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'fx_cron_prev'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TABLE fx.schedule (
	name			text PRIMARY KEY CHECK (name <> ''),
	cron			text NOT NULL CHECK (fx.cron_next(cron, '2000-01-01 00:00+00') IS NOT NULL),	/* valid, and fires */
	fn				text NOT NULL,		/* name, name:version or name:alias */
	args			jsonb NOT NULL,
	next_at			timestamptz NOT NULL,	/* the first tick not yet enqueued */
	last_at			timestamptz,		/* the latest tick enqueued ... */
	last_invocation	bigint,				/* ... and its invocation */
	last_error		text,				/* why the latest due tick enqueued nothing */
	created_at		timestamptz NOT NULL DEFAULT now(),
	owner			name NOT NULL DEFAULT current_user
);

/* What every worker tick reads: nothing else when nothing is due. */
CREATE INDEX schedule_next ON fx.schedule (next_at);

/* A tick's idempotency key: one invocation per (schedule, tick). */
CREATE FUNCTION fx.schedule_key(name text, tick timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT 'fx-schedule-' || $1 || '-' || extract(epoch FROM $2)::bigint $$;

/*
 * Withdraw the ticks of schedule `name` that were enqueued ahead and have
 * not come yet (and so never started): unscheduling stops at once, and a
 * replaced schedule's next ticks run as it now says.  Their keys become
 * free again.
 */
CREATE FUNCTION fx.schedule_withdraw(name text) RETURNS int
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (
		DELETE FROM fx.invocation i
		 WHERE i.status = 'queued' AND NOT i.blocked AND i.not_before > now()
		   AND i.attempts = 0
		   AND starts_with(i.idempotency_key, 'fx-schedule-' || $1 || '-')
		   AND substr(i.idempotency_key, length($1) + 14) ~ '^[0-9]+$'
		RETURNING 1
	)
	SELECT count(*)::int FROM gone
$$;

/*
 * Schedule fn with args on spec, under name; a schedule of that name is
 * replaced.  Returns its next tick.
 */
CREATE FUNCTION fx_schedule(name text, cron text, fn text, args jsonb DEFAULT '{}')
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	base text := split_part(fn, ':', 1);
	qual text := nullif(substr(fn, length(split_part(fn, ':', 1)) + 2), '');
	fn_owner name;
	first timestamptz;
	old fx.schedule;
BEGIN
	IF name IS NULL OR cron IS NULL OR fn IS NULL OR args IS NULL THEN
		RAISE EXCEPTION 'fx_schedule needs a name, a cron spec, a function and args'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Pass ''{}'' or ''null''::jsonb for no arguments.';
	END IF;
	IF name = '' THEN
		RAISE EXCEPTION 'schedule name must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	first := fx.cron_next(cron, now());		/* raises if the spec is invalid */
	IF base = '' OR (qual IS NULL AND fn LIKE '%:') THEN
		RAISE EXCEPTION 'invalid function reference "%"', fn
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use "name", "name:version" or "name:alias".';
	END IF;
	SELECT f.owner INTO fn_owner FROM fx.function f WHERE f.name = base;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'function "%" is not deployed', base
			USING ERRCODE = 'undefined_object',
				  HINT = format('Deploy it with fx_deploy() or "fx deploy %s DIR".', base);
	END IF;
	IF NOT fx.may_invoke(fx.caller(), base) THEN
		RAISE EXCEPTION 'permission denied to invoke function "%"', base
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Function "%s" belongs to role "%s"; a schedule invokes it for the role that made it.', base, fn_owner);
	END IF;
	IF qual ~ '^[0-9]+$' THEN
		IF NOT EXISTS (SELECT 1 FROM fx.version v
					   WHERE v.fn = base AND v.version::text = ltrim(qual, '0')) THEN
			RAISE EXCEPTION 'function "%" has no version %', base, qual
				USING ERRCODE = 'undefined_object',
					  HINT = format('SELECT * FROM fx.version_list WHERE fn = %L lists its versions.', base);
		END IF;
	ELSIF NOT EXISTS (SELECT 1 FROM fx.alias a
					  WHERE a.fn = base AND a.alias = coalesce(qual, 'live')) THEN
		RAISE EXCEPTION 'function "%" has no alias "%"', base, coalesce(qual, 'live')
			USING ERRCODE = 'undefined_object',
				  HINT = 'Point one at a version with fx_alias().';
	END IF;
	/*
	 * A schedule being replaced: its ticks enqueued ahead go, and its last
	 * tick is the latest one that came.
	 */
	SELECT * INTO old FROM fx.schedule s WHERE s.name = fx_schedule.name FOR UPDATE;
	IF FOUND AND NOT fx.owns_role(fx.caller(), old.owner) THEN
		RAISE EXCEPTION 'must be owner of schedule "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Schedule "%s" belongs to role "%s".', name, old.owner);
	END IF;
	IF FOUND THEN
		PERFORM fx.schedule_withdraw(fx_schedule.name);
		IF old.last_at > now() THEN
			old.last_at := fx.cron_prev(old.cron, now());
			SELECT i.id INTO old.last_invocation FROM fx.invocation i
			 WHERE i.fn = split_part(old.fn, ':', 1)
			   AND i.idempotency_key = fx.schedule_key(old.name, old.last_at);
			IF NOT FOUND THEN
				old.last_at := NULL;
			END IF;
		END IF;
	END IF;
	INSERT INTO fx.schedule AS s (name, cron, fn, args, next_at, owner)
		VALUES (fx_schedule.name, fx_schedule.cron, fx_schedule.fn, fx_schedule.args, first,
				fx.caller()::regrole::text)
		ON CONFLICT ON CONSTRAINT schedule_pkey DO UPDATE
		SET cron = EXCLUDED.cron, fn = EXCLUDED.fn, args = EXCLUDED.args,
			next_at = EXCLUDED.next_at, owner = EXCLUDED.owner, last_error = NULL,
			last_at = old.last_at, last_invocation = old.last_invocation;
	RETURN first;
END
$$;

/* Remove a schedule and its ticks enqueued ahead; whether there was one. */
CREATE FUNCTION fx_unschedule(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o name;
BEGIN
	SELECT s.owner INTO o FROM fx.schedule s WHERE s.name = fx_unschedule.name;
	IF FOUND AND NOT fx.owns_role(fx.caller(), o) THEN
		RAISE EXCEPTION 'must be owner of schedule "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Schedule "%s" belongs to role "%s".', name, o);
	END IF;
	DELETE FROM fx.schedule s WHERE s.name = fx_unschedule.name;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM fx.schedule_withdraw(fx_unschedule.name);
	RETURN true;
END
$$;

/*
 * Enqueue the due ticks of every schedule, and the ticks of the next
 * `horizon` delayed to their time, so that they start on time however long
 * a worker's tick is (workers pass twice their --poll-ms).  Each tick is
 * enqueued once: the schedule's row is locked (SKIP LOCKED: one that
 * another worker is firing is passed over) and its next_at moves past the
 * tick in the same transaction, and the tick's idempotency key would
 * return the same invocation again anyway.
 *
 * Missed ticks: ticks that came while no worker ran (next_at has passed)
 * are not all run: only the latest of them runs, once, as soon as a worker
 * is back, and next_at moves to the first tick after now (pg_cron does not
 * catch up either; systemd's Persistent=true timers likewise run once).
 *
 * A tick that cannot be enqueued (the function's alias was removed, args
 * are over fx.max_payload_size) is skipped, with a warning and the error
 * in last_error.  Workers call this on every tick, in the statement that
 * reaps: when nothing is due it is one index scan and writes nothing.
 * Returns how many invocations it enqueued.
 */
CREATE FUNCTION fx.fire_schedules(horizon interval DEFAULT '0') RETURNS int
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	upto timestamptz := now() + least(greatest(coalesce(horizon, '0'), '0'), '1 hour');
	s fx.schedule;
	tick timestamptz;
	k text;
	fired int;
	added int;
	n int := 0;
	err text;
BEGIN
	FOR s IN SELECT * FROM fx.schedule sc WHERE sc.next_at <= upto
			  ORDER BY sc.next_at FOR UPDATE SKIP LOCKED
	LOOP
		BEGIN
			tick := s.next_at;
			IF tick <= now() THEN
				/* the latest tick that has come; none since next_at: the next one */
				tick := fx.cron_prev(s.cron, now());
				IF tick < s.next_at THEN
					tick := fx.cron_next(s.cron, now());
				END IF;
			END IF;
			fired := 0;
			added := 0;
			/* at most 1000 at a time: the rest follow on the next call */
			WHILE tick <= upto AND fired < 1000 LOOP
				k := fx.schedule_key(s.name, tick);
				IF NOT EXISTS (SELECT 1 FROM fx.invocation i
							   WHERE i.fn = split_part(s.fn, ':', 1) AND i.idempotency_key = k) THEN
					added := added + 1;
				END IF;
				PERFORM set_config('fx.invoke_as', s.owner, true);
				s.last_invocation := @extschema@.fx_invoke(s.fn, s.args,
						delay => greatest(tick - now(), interval '0'), idempotency_key => k);
				PERFORM set_config('fx.invoke_as', '', true);
				s.last_at := tick;
				fired := fired + 1;
				tick := fx.cron_next(s.cron, tick);
			END LOOP;
			UPDATE fx.schedule sc
			   SET next_at = tick, last_at = s.last_at, last_invocation = s.last_invocation,
				   last_error = NULL
			 WHERE sc.name = s.name;
			n := n + added;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
			UPDATE fx.schedule sc
			   SET next_at = fx.cron_next(s.cron, greatest(upto, s.next_at)), last_error = err
			 WHERE sc.name = s.name;
			RAISE WARNING 'schedule "%" skipped a tick: %', s.name, err;
		END;
	END LOOP;
	RETURN n;
END
$$;

/*
 * The schedules, with the next tick to run (next_at; in the past: due,
 * waiting for a worker) and the latest tick enqueued (last_at, which may be
 * a tick shortly ahead, its invocation queued until then).
 */
CREATE VIEW fx.schedules AS
	SELECT s.name, s.cron, s.fn, s.args,
		   CASE WHEN s.last_at > now() THEN fx.cron_next(s.cron, now()) ELSE s.next_at END
			   AS next_at,
		   s.last_at, s.last_invocation, i.status AS last_status, s.last_error,
		   s.owner, s.created_at
	  FROM fx.schedule s LEFT JOIN fx.invocation i ON i.id = s.last_invocation;

/* ---------------------------------------------------------------------
 * HTTP tokens and metrics (fx worker --http; worker/fx_http.c).
 *
 * Every request to /fn/NAME and /invocations/ID carries a bearer token
 * made by fx_token_create().  Only the SHA-256 of its secret is stored, so
 * the secret is shown once.  A token may invoke every function (functions
 * NULL) or the ones it names, and only functions its owner may invoke
 * (fx_invoke's rule).  The worker calls the fx.http_* functions on a
 * session of its own, as its own role.
 * --------------------------------------------------------------------- */

CREATE TABLE fx.token (
	name		text PRIMARY KEY CHECK (name <> ''),
	hash		text NOT NULL UNIQUE,	/* sha256 of the secret, hex */
	functions	text[],					/* NULL: every function */
	created_at	timestamptz NOT NULL DEFAULT now(),
	owner		name NOT NULL DEFAULT current_user
);

/*
 * The stored form of a secret.  fx_token_create inlines it: EXECUTE on
 * fx.* is revoked from PUBLIC, and fx_token_create may be granted.
 */
CREATE FUNCTION fx.token_hash(secret text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(secret, 'UTF8')), 'hex') $$;

/* A new token; returns its secret, which is kept nowhere. */
CREATE FUNCTION fx_token_create(name text, functions text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	secret text := 'fx_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'token name must not be empty'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(functions) = 0 OR array_position(functions, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'functions must name at least one function, and no nulls'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass NULL to let the token invoke every function.';
	END IF;
	IF EXISTS (SELECT 1 FROM fx.token t WHERE t.name = fx_token_create.name) THEN
		RAISE EXCEPTION 'token "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Revoke it first with fx_token_revoke(), or choose another name.';
	END IF;
	INSERT INTO fx.token (name, hash, functions)
	VALUES (fx_token_create.name, encode(sha256(convert_to(secret, 'UTF8')), 'hex'),
			fx_token_create.functions);
	RETURN secret;
END
$$;

/* Delete a token; false if there was none of that name. */
CREATE FUNCTION fx_token_revoke(name text) RETURNS boolean
LANGUAGE sql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	WITH gone AS (DELETE FROM fx.token t WHERE t.name = fx_token_revoke.name RETURNING 1)
	SELECT count(*) > 0 FROM gone
$$;

/*
 * May the token whose secret this is invoke fn ("name", "name:version" or
 * "name:alias")?  'ok', 'unknown' (no such token, or its owner is gone) or
 * 'forbidden'.
 */
CREATE FUNCTION fx.token_allows(secret text, fn text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t fx.token;
	base text := split_part(fn, ':', 1);
BEGIN
	SELECT * INTO t FROM fx.token k WHERE k.hash = fx.token_hash(secret);
	IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = t.owner) THEN
		RETURN 'unknown';
	END IF;
	IF t.functions IS NOT NULL AND NOT (fn = ANY (t.functions) OR base = ANY (t.functions)) THEN
		RETURN 'forbidden';
	END IF;
	IF EXISTS (SELECT 1 FROM fx.function f WHERE f.name = base)
	   AND NOT fx.may_invoke(t.owner::regrole::oid, base) THEN
		RETURN 'forbidden';
	END IF;
	RETURN 'ok';
END
$$;

/*
 * POST /fn/NAME: check the token, then enqueue as fx_invoke does.  sync
 * marks the invocation as waited for by this session, as fx_call's are:
 * one attempt, and its end notified on fx_done_<this backend's pid>.
 * Errors the worker maps to HTTP: 28000 no such token (401), 42501 not
 * allowed (403), 42704 no such function (404), class 22 bad args (400),
 * 54000 args too large (413).
 */
CREATE FUNCTION fx.http_invoke(secret text, fn text, args text, key text, sync boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	verdict text := fx.token_allows(secret, fn);
	id bigint;
BEGIN
	IF verdict = 'unknown' THEN
		RAISE EXCEPTION 'invalid token' USING ERRCODE = 'invalid_authorization_specification';
	ELSIF verdict = 'forbidden' THEN
		RAISE EXCEPTION 'this token may not invoke function "%"', fn
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	PERFORM set_config('fx.sync_waiter', CASE WHEN sync THEN 'on' ELSE 'off' END, true);
	IF sync THEN
		/* as fx_call: the completion, which the caller waits for, is durable */
		PERFORM set_config('synchronous_commit', 'off', true);
	END IF;
	/* for the token's owner, who must be allowed to invoke fn */
	PERFORM set_config('fx.invoke_as', t.owner, true)
	   FROM fx.token t WHERE t.hash = fx.token_hash(secret);
	id := @extschema@.fx_invoke(fn, args::jsonb, key => key);
	PERFORM set_config('fx.invoke_as', '', true);
	RETURN id;
END
$$;

/* A waited-for invocation's end; cancel: fx_cancel it first (timed out). */
CREATE FUNCTION fx.http_outcome(id bigint, cancel boolean DEFAULT false)
RETURNS TABLE (fn text, status text, result text, error text, detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF cancel THEN
		PERFORM @extschema@.fx_cancel(http_outcome.id);
	END IF;
	RETURN QUERY SELECT i.fn, i.status::text, i.result::text, i.error, i.error_detail
				   FROM fx.invocation i WHERE i.id = http_outcome.id;
END
$$;

/* GET /invocations/ID, with the token's rights on the invocation's function. */
CREATE FUNCTION fx.http_invocation(secret text, id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	i fx.invocation;
	verdict text;
BEGIN
	SELECT * INTO i FROM fx.invocation v WHERE v.id = http_invocation.id;
	verdict := fx.token_allows(secret, coalesce(i.fn, ''));
	IF verdict = 'unknown' THEN
		RAISE EXCEPTION 'invalid token' USING ERRCODE = 'invalid_authorization_specification';
	ELSIF i.id IS NULL THEN
		RAISE EXCEPTION 'invocation % does not exist', id USING ERRCODE = 'undefined_object';
	ELSIF verdict = 'forbidden' THEN
		RAISE EXCEPTION 'this token may not see invocations of function "%"', i.fn
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN jsonb_build_object('id', i.id, 'fn', i.fn, 'status', i.status,
							  'result', i.result, 'error', i.error, 'detail', i.error_detail,
							  'created_at', i.created_at, 'finished_at', i.finished_at);
END
$$;

/*
 * After the worker's HTTP session reconnected (a new backend pid): the
 * unfinished of ids notify this session from now on; returns the others
 * (ended meanwhile, or gone), whose end the worker reads itself.
 */
CREATE FUNCTION fx.http_rewait(ids bigint[]) RETURNS SETOF bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH moved AS (
		UPDATE fx.invocation i SET waiter = pg_backend_pid()
		 WHERE i.id = ANY (ids) AND i.status IN ('queued', 'running')
		RETURNING i.id)
	SELECT x.id FROM unnest(ids) AS x(id) WHERE x.id NOT IN (SELECT m.id FROM moved m)
$$;

/* The largest request body the worker accepts: fx.max_payload_size. */
CREATE FUNCTION fx.http_max_body() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM fx.max_state_size();	/* loads the module, which defines the setting */
	RETURN pg_size_bytes(current_setting('fx.max_payload_size'));
END
$$;

/* Queued invocations (runnable, delayed or behind their key): fx_queue_depth. */
CREATE FUNCTION fx.queue_depth() RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (SELECT count(*) FROM fx.invocation i WHERE i.status = 'queued' AND NOT i.blocked)
		 + (SELECT count(*) FROM fx.invocation i WHERE i.blocked AND i.status = 'queued')
$$;

/* Tokens let anyone holding one act as the worker's role: administrators only. */
REVOKE EXECUTE ON FUNCTION fx_token_create(text, text[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fx_token_revoke(text) FROM PUBLIC;

/* ---------------------------------------------------------------------
 * Security model (README.md, "Security model").
 *
 *   fx_admin     everything: every function, invocation, secret and token
 *   fx_deployer  deploys functions (and owns what it deploys), grants them,
 *                schedules them, keeps secrets and gives them to its functions
 *   fx_invoker   uses the invoking API (fx_invoke, fx_call, fx_result, ...)
 *                on the functions granted to it (fx_grant) or its own
 *   fx_worker    claims and completes invocations; workers log in as it
 *
 * Who may invoke a function: its owner (and members of the owning role),
 * the roles it is granted to (and their members), administrators and
 * workers.  Who sees an invocation, its result, logs, steps and events: the
 * role it was enqueued for (invocation.invoker; members of it too), the
 * function's owner, administrators and workers: row-level security, so
 * SELECT on fx's tables shows each role its own rows.  Changes go through
 * SECURITY DEFINER functions that check fx.caller(), the role the session
 * acts as, and pin search_path.
 * --------------------------------------------------------------------- */

DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['fx_admin', 'fx_deployer', 'fx_invoker', 'fx_worker'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
	IF NOT pg_has_role('fx_deployer', 'fx_invoker', 'MEMBER') THEN
		GRANT fx_invoker TO fx_deployer;
	END IF;
	IF NOT pg_has_role('fx_worker', 'fx_invoker', 'MEMBER') THEN
		GRANT fx_invoker TO fx_worker;
	END IF;
	IF NOT pg_has_role('fx_admin', 'fx_deployer', 'MEMBER') THEN
		GRANT fx_deployer TO fx_admin;
	END IF;
	IF NOT pg_has_role('fx_admin', 'fx_worker', 'MEMBER') THEN
		GRANT fx_worker TO fx_admin;
	END IF;
END
$$;

/*
 * The role the session acts as: current_user outside SECURITY DEFINER
 * functions (inside them current_user is fx's owner).
 */
CREATE FUNCTION fx.caller() RETURNS oid
AS 'MODULE_PATHNAME', 'fx_caller'
LANGUAGE C STABLE;

/* Whether who is an administrator (a member of fx_admin, or a superuser). */
CREATE FUNCTION fx.is_admin(who oid) RETURNS boolean
LANGUAGE sql STABLE STRICT
AS $$ SELECT pg_catalog.pg_has_role(who, 'fx_admin', 'USAGE') $$;

/* Whether who acts as role owner (a member of it) or is an administrator. */
CREATE FUNCTION fx.owns_role(who oid, owner name) RETURNS boolean
LANGUAGE sql STABLE
AS $$
	SELECT fx.is_admin(who)
		OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.rolname = owner AND pg_catalog.pg_has_role(who, r.oid, 'USAGE'))
$$;

/* Whether who owns function fn (or is an administrator). */
CREATE FUNCTION fx.owns(who oid, fn text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
	SELECT fx.is_admin(who)
		OR EXISTS (SELECT 1 FROM fx.function f JOIN pg_catalog.pg_roles r ON r.rolname = f.owner
					WHERE f.name = fn AND pg_catalog.pg_has_role(who, r.oid, 'USAGE'))
$$;

/* Whether who sees an invocation of fn enqueued for invoker. */
CREATE FUNCTION fx.sees(who oid, invoker regrole, fn text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
	SELECT pg_catalog.pg_has_role(who, invoker::oid, 'USAGE')
		OR pg_catalog.pg_has_role(who, 'fx_worker', 'USAGE')
		OR fx.owns(who, fn)
$$;

/* Functions granted to roles other than their owners: fx_grant, fx_revoke. */
CREATE TABLE fx.grant (
	fn			text NOT NULL REFERENCES fx.function (name) ON DELETE CASCADE,
	grantee		regrole NOT NULL,		/* 0 (shown as -): PUBLIC, every role */
	granted_by	regrole NOT NULL,
	granted_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (fn, grantee)
);

/* Whether who may invoke fn: as fx_invoke checks it (extension/fx_invoke.c). */
CREATE FUNCTION fx.may_invoke(who oid, fn text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_has_role(who, 'fx_admin', 'USAGE') OR pg_has_role(who, 'fx_worker', 'USAGE')
		OR fx.owns(who, fn)
		OR EXISTS (SELECT 1 FROM fx.grant g
					WHERE g.fn = may_invoke.fn
					  AND (g.grantee = 0 OR pg_has_role(who, g.grantee::oid, 'USAGE')))
		OR EXISTS (SELECT 1 FROM fx.function f, fx.function o, fx.version v
					WHERE f.name = may_invoke.fn AND o.owner = f.owner AND v.fn = o.name
					  AND v.options->>'role' = (SELECT r.rolname FROM pg_roles r WHERE r.oid = who))
$$;

/*
 * Raise "WHAT ID does not exist" unless the caller sees invocation id: an
 * invocation one may not see is, to one, not there.
 */
CREATE FUNCTION fx.require_sees(id bigint, what text DEFAULT 'invocation') RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fx.invocation i
				   WHERE i.id = require_sees.id AND fx.sees(fx.caller(), i.invoker, i.fn)) THEN
		RAISE EXCEPTION '% % does not exist', what, id
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;

/* The role named, or PUBLIC (0) for 'public'; raises if there is none. */
CREATE FUNCTION fx.grantee(role text) RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r oid;
BEGIN
	IF lower(role) = 'public' THEN
		RETURN 0;
	END IF;
	SELECT g.oid INTO r FROM pg_roles g WHERE g.rolname = role;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'role "%" does not exist', role
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN r;
END
$$;

/* Lock fn's row; raise unless it exists and the caller owns it. */
CREATE FUNCTION fx.require_owner(fn text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o name;
BEGIN
	SELECT f.owner INTO o FROM fx.function f WHERE f.name = require_owner.fn FOR SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'function "%" is not deployed', fn
			USING ERRCODE = 'undefined_object';
	END IF;
	IF NOT fx.owns(fx.caller(), fn) THEN
		RAISE EXCEPTION 'must be owner of function "%"', fn
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Function "%s" belongs to role "%s".', fn, o);
	END IF;
END
$$;

/*
 * Let role (and its members; 'public': every role) invoke fn.  Only fn's
 * owner or an administrator may.  Granting again changes nothing.
 */
CREATE FUNCTION fx_grant(fn text, role text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF fn IS NULL OR role IS NULL THEN
		RAISE EXCEPTION 'fx_grant needs a function and a role'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM fx.require_owner(fn);
	INSERT INTO fx.grant AS g (fn, grantee, granted_by)
		VALUES (fx_grant.fn, fx.grantee(role)::regrole, fx.caller()::regrole)
		ON CONFLICT ON CONSTRAINT grant_pkey DO NOTHING;
END
$$;

/* Take back fx_grant(fn, role); whether it had been granted. */
CREATE FUNCTION fx_revoke(fn text, role text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF fn IS NULL OR role IS NULL THEN
		RAISE EXCEPTION 'fx_revoke needs a function and a role'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM fx.require_owner(fn);
	DELETE FROM fx.grant g WHERE g.fn = fx_revoke.fn AND g.grantee = fx.grantee(role);
	RETURN FOUND;
END
$$;

/*
 * Secrets: values a function needs (API keys, passwords), stored here,
 * given to the functions they are granted to as files under /run/secrets
 * in the sandbox, never on a command line or in the environment, and
 * redacted from the logs and errors the worker stores.  Their values are
 * readable only by administrators and workers; their owners set, grant
 * and delete them.
 */
CREATE TABLE fx.secret (
	name		text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'),
	value		text NOT NULL,
	owner		regrole NOT NULL,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fx.secret_grant (
	secret		text NOT NULL REFERENCES fx.secret (name) ON DELETE CASCADE,
	fn			text NOT NULL REFERENCES fx.function (name) ON DELETE CASCADE,
	PRIMARY KEY (secret, fn)
);

/* Lock secret's row; raise unless it exists and the caller owns it. */
CREATE FUNCTION fx.require_secret_owner(name text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o regrole;
BEGIN
	SELECT s.owner INTO o FROM fx.secret s WHERE s.name = require_secret_owner.name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'secret "%" does not exist', name
			USING ERRCODE = 'undefined_object',
				  HINT = 'Create it with fx_secret_set(name, value).';
	END IF;
	IF NOT (fx.is_admin(fx.caller()) OR pg_has_role(fx.caller(), o::oid, 'USAGE')) THEN
		RAISE EXCEPTION 'must be owner of secret "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('Secret "%s" belongs to role "%s".', name, o);
	END IF;
END
$$;

/*
 * Set a secret, creating it owned by the caller or replacing the value of
 * one the caller owns.  Warm sandboxes of the functions it is granted to
 * are retired (fx_secret notification), so the next attempt reads the new
 * value.
 */
CREATE FUNCTION fx_secret_set(name text, value text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF name IS NULL OR value IS NULL THEN
		RAISE EXCEPTION 'fx_secret_set needs a name and a value'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$' THEN
		RAISE EXCEPTION 'invalid secret name "%"', name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A secret name is its file name under /run/secrets: a letter or "_", then up to 127 letters, digits, "_", "." or "-".';
	END IF;
	IF octet_length(value) > 65536 THEN
		RAISE EXCEPTION 'secret "%" is too large: % bytes', name, octet_length(value)
			USING ERRCODE = 'program_limit_exceeded',
				  DETAIL = 'A secret holds at most 64 KiB.';
	END IF;
	IF EXISTS (SELECT 1 FROM fx.secret s WHERE s.name = fx_secret_set.name) THEN
		PERFORM fx.require_secret_owner(name);
		UPDATE fx.secret s SET value = fx_secret_set.value, updated_at = now()
		 WHERE s.name = fx_secret_set.name;
		PERFORM pg_notify('fx_secret', g.fn) FROM fx.secret_grant g
		  WHERE g.secret = fx_secret_set.name;
	ELSE
		INSERT INTO fx.secret (name, value, owner)
			VALUES (fx_secret_set.name, fx_secret_set.value, fx.caller()::regrole);
	END IF;
END
$$;

/* Delete a secret the caller owns; whether there was one. */
CREATE FUNCTION fx_secret_delete(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM fx.secret s WHERE s.name = fx_secret_delete.name) THEN
		RETURN false;
	END IF;
	PERFORM fx.require_secret_owner(name);
	PERFORM pg_notify('fx_secret', g.fn) FROM fx.secret_grant g
	  WHERE g.secret = fx_secret_delete.name;
	DELETE FROM fx.secret s WHERE s.name = fx_secret_delete.name;
	RETURN true;
END
$$;

/*
 * Give secret to function fn: its sandboxes get /run/secrets/<secret>.
 * The caller must own both (or be an administrator).
 */
CREATE FUNCTION fx_secret_grant(secret text, fn text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF secret IS NULL OR fn IS NULL THEN
		RAISE EXCEPTION 'fx_secret_grant needs a secret and a function'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM fx.require_secret_owner(secret);
	PERFORM fx.require_owner(fn);
	INSERT INTO fx.secret_grant AS g (secret, fn) VALUES (fx_secret_grant.secret, fx_secret_grant.fn)
		ON CONFLICT ON CONSTRAINT secret_grant_pkey DO NOTHING;
	PERFORM pg_notify('fx_secret', fn);
END
$$;

/* Take a secret back from a function; whether it had it. */
CREATE FUNCTION fx_secret_revoke(secret text, fn text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF secret IS NULL OR fn IS NULL THEN
		RAISE EXCEPTION 'fx_secret_revoke needs a secret and a function'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM fx.require_secret_owner(secret);
	DELETE FROM fx.secret_grant g
	 WHERE g.secret = fx_secret_revoke.secret AND g.fn = fx_secret_revoke.fn;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	PERFORM pg_notify('fx_secret', fn);
	RETURN true;
END
$$;

/* Secrets without their values: who owns them and which functions get them. */
CREATE VIEW fx.secrets AS
	SELECT s.name, s.owner,
		   array(SELECT g.fn FROM fx.secret_grant g WHERE g.secret = s.name ORDER BY 1) AS functions,
		   s.updated_at
	  FROM fx.secret s;

/* What a worker puts under /run/secrets for an attempt of fn. */
CREATE FUNCTION fx.secrets_for(fn text) RETURNS TABLE (name text, value text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT s.name, s.value FROM fx.secret s JOIN fx.secret_grant g ON g.secret = s.name
	 WHERE g.fn = $1 ORDER BY s.name
$$;

/* Grants, as roles read them: 'PUBLIC' for every role. */
CREATE VIEW fx.grants AS
	SELECT g.fn, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::text END AS grantee,
		   g.granted_by, g.granted_at
	  FROM fx.grant g;

/* Row-level security: each role sees its own rows (fx.sees). */
ALTER TABLE fx.invocation ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.log ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.step ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.event ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.message ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.state ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.version ENABLE ROW LEVEL SECURITY;
ALTER TABLE fx.schedule ENABLE ROW LEVEL SECURITY;

CREATE POLICY seen ON fx.invocation FOR SELECT
	USING (fx.sees((SELECT current_user::text::regrole::oid), invoker, fn));
CREATE POLICY seen ON fx.log FOR SELECT
	USING (EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = invocation_id));
CREATE POLICY seen ON fx.step FOR SELECT
	USING (EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = invocation_id));
CREATE POLICY seen ON fx.event FOR SELECT
	USING (EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = workflow_id));
CREATE POLICY seen ON fx.message FOR SELECT
	USING (EXISTS (SELECT 1 FROM fx.invocation i WHERE i.id = workflow_id));
/* a key's state and a function's code: its owner's */
CREATE POLICY seen ON fx.state FOR SELECT
	USING (fx.owns((SELECT current_user::text::regrole::oid), fn));
CREATE POLICY seen ON fx.version FOR SELECT
	USING (fx.owns((SELECT current_user::text::regrole::oid), fn));
CREATE POLICY seen ON fx.schedule FOR SELECT
	USING (fx.owns_role((SELECT current_user::text::regrole::oid), owner));

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['invocation', 'log', 'step', 'event', 'message', 'state',
							 'version', 'schedule'] LOOP
		EXECUTE format('CREATE POLICY worker ON fx.%I TO fx_worker, fx_admin USING (true) WITH CHECK (true)', t);
	END LOOP;
END
$$;

/* Views read as the role that queries them, so row-level security holds. */
ALTER VIEW fx.version_list SET (security_invoker = true);
ALTER VIEW fx.usage SET (security_invoker = true);
ALTER VIEW fx.stats SET (security_invoker = true);
ALTER VIEW fx.schedules SET (security_invoker = true);

/*
 * Privileges.  Nothing of fx is PUBLIC but what a function's sql calls
 * from inside its invocation's transaction (fenced by the lease token)
 * and what row-level security and the trigger call.
 */
GRANT USAGE ON SCHEMA fx TO PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA fx FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fx.finish_tx(text, uuid, jsonb, int, boolean) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.assert_sql_role() TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.step_tx(text, uuid, bigint, int, text, jsonb, timestamptz) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.bucket(text, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.on_change_trigger() TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.on_change_name(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION fx.caller(), fx.is_admin(oid), fx.owns_role(oid, name),
	fx.owns(oid, text), fx.sees(oid, regrole, text), fx.may_invoke(oid, text),
	fx.require_sees(bigint, text) TO PUBLIC;

DO $$
DECLARE
	f regprocedure;
	deployer text[] := ARRAY['fx_deploy', 'fx_alias', 'fx_grant', 'fx_revoke', 'fx_schedule',
							 'fx_unschedule', 'fx_on_change', 'fx_off_change', 'fx_secret_set',
							 'fx_secret_delete', 'fx_secret_grant', 'fx_secret_revoke'];
	admin text[] := ARRAY['fx_token_create', 'fx_token_revoke'];
BEGIN
	FOR f IN SELECT p.oid FROM pg_proc p
			  WHERE p.pronamespace = '@extschema@'::regnamespace AND p.proname LIKE 'fx\_%' LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f,
					   CASE WHEN (SELECT p.proname FROM pg_proc p WHERE p.oid = f) = ANY (admin)
							THEN 'fx_admin'
							WHEN (SELECT p.proname FROM pg_proc p WHERE p.oid = f) = ANY (deployer)
							THEN 'fx_deployer'
							ELSE 'fx_invoker' END);
	END LOOP;
END
$$;

GRANT SELECT ON fx.function, fx.alias, fx.grant, fx.grants, fx.invocation, fx.log, fx.step,
	fx.event, fx.message, fx.state, fx.version, fx.version_list, fx.usage, fx.stats
	TO fx_invoker;
GRANT SELECT ON fx.schedule, fx.schedules, fx.secrets TO fx_deployer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA fx TO fx_worker, fx_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA fx TO fx_worker, fx_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fx TO fx_worker, fx_admin;
