-- setup.sql: the tables and role of examples/bank, with two sample accounts.
--
-- Run once, as a superuser (or a role allowed to create roles), in the
-- database fx uses:  fx psql -f examples/bank/setup.sql
-- Running it again changes nothing.
--
-- The function's sql runs as bank_fn: the worker logs in as that role, so
-- it must be able to log in (LOGIN) and the server must let the worker's
-- host in as it (trust or peer on the local socket, or a password in the
-- worker's ~/.pgpass).  It is not a superuser, and may only read and move
-- balances and append to the log.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_fn') THEN
		CREATE ROLE bank_fn LOGIN;
	END IF;
END
$$;

CREATE TABLE IF NOT EXISTS account (
	id		text PRIMARY KEY,
	balance	bigint NOT NULL CHECK (balance >= 0)
);

CREATE TABLE IF NOT EXISTS transfer_log (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	idempotency_key	text NOT NULL UNIQUE,	/* one row per invocation */
	from_id			text NOT NULL REFERENCES account (id),
	to_id			text NOT NULL REFERENCES account (id),
	amount			bigint NOT NULL CHECK (amount > 0),
	invocation_id	bigint NOT NULL,
	at				timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, UPDATE (balance) ON account TO bank_fn;
GRANT SELECT, INSERT ON transfer_log TO bank_fn;

INSERT INTO account (id, balance) VALUES ('alice', 100), ('bob', 50)
	ON CONFLICT (id) DO NOTHING;
