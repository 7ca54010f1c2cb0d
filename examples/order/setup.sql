-- setup.sql: the tables and role of examples/order, with stock to sell.
--
-- Run once, as a superuser (or a role allowed to create roles), in the
-- database fx uses:  fx psql -f examples/order/setup.sql
-- Running it again changes nothing.
--
-- The workflow's sql runs as order_fn (see examples/bank/setup.sql for what
-- a function's role needs): it may take and give back stock, and write its
-- orders.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'order_fn') THEN
		CREATE ROLE order_fn LOGIN;
	END IF;
END
$$;

CREATE TABLE IF NOT EXISTS stock (
	item		text PRIMARY KEY,
	available	int NOT NULL CHECK (available >= 0)
);

-- One row per workflow (the order's id is its workflow id).
CREATE TABLE IF NOT EXISTS orders (
	id			bigint PRIMARY KEY,
	item		text NOT NULL,
	qty			int NOT NULL,
	status		text NOT NULL,		-- reserved, shipped, cancelled
	charged		int,
	tracking	text,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, UPDATE ON stock TO order_fn;
GRANT SELECT, INSERT, UPDATE ON orders TO order_fn;

INSERT INTO stock VALUES ('widget', 100), ('gadget', 5) ON CONFLICT DO NOTHING;
