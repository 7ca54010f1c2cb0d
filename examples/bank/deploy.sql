-- deploy.sql: deploy examples/bank/main.py as function "bank", its sql
-- running as bank_fn (made by setup.sql).
--
-- fx deploy has no flag for the role, so this calls fx_deploy() with the
-- option "role"; the source text becomes the bundle's executable "main".
-- Run from the repository root:  fx psql -f examples/bank/deploy.sql

\set ON_ERROR_STOP on
\set source `cat examples/bank/main.py`

SELECT fx_deploy('bank', :'source', '{python3,main}',
				 '{"mode": "session", "role": "bank_fn", "retries": 2}')
	AS version;
