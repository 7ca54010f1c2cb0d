-- bench/pgbench/schema.sql: the queue the ceiling scripts work on, shaped like
-- fx.invocation's hot path (a status, args and result as jsonb, timestamps)
-- with a partial index on ready rows.  run.sh fills it with :rows queued
-- jobs before each pgbench run (psql -v rows=N).
DROP TABLE IF EXISTS job;
CREATE TABLE job (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	status		text NOT NULL DEFAULT 'queued',
	args		jsonb NOT NULL DEFAULT '{}',
	result		jsonb,
	created_at	timestamptz NOT NULL DEFAULT now(),
	started_at	timestamptz,
	finished_at	timestamptz
);
INSERT INTO job (args) SELECT '{}' FROM generate_series(1, :rows);
CREATE INDEX job_ready ON job (id) WHERE status = 'queued';
VACUUM ANALYZE job;
CHECKPOINT;
