--
-- status: the SQL enum fx.status lists exactly the statuses that
-- include/fx/fx_common.h mirrors (FX_STATUS_NAMES), in the same order.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;

SELECT enum_range(NULL::fx.status);
SELECT enum_range(NULL::fx.status)::text[]
	   = ARRAY['queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled']
	   AS matches_fx_common_h;
SELECT enumsortorder, enumlabel FROM pg_enum
 WHERE enumtypid = 'fx.status'::regtype ORDER BY enumsortorder;

-- fx.invocation.status has that type and starts queued.
SELECT atttypid::regtype AS type, attnotnull AS not_null,
	   pg_get_expr(adbin, adrelid) AS default
  FROM pg_attribute
  LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid = 'fx.invocation'::regclass AND attname = 'status';

-- fx_status returns these names as text.
SELECT pg_get_function_result('fx_status(bigint)'::regprocedure) AS returns;

-- A value outside the list is refused.
SELECT 'running'::fx.status, 'paused'::fx.status;
