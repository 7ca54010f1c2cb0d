--
-- deploy: fx_deploy from source text and from a tar bundle, versions,
-- idempotent redeploys, the alias "live", fx_alias, and every bad input.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fx;
RESET client_min_messages;

--
-- A ustar archive built byte by byte, so that bundles do not depend on
-- how a libarchive version lays out its output.
--
CREATE FUNCTION pg_temp.field(s text, n int) RETURNS bytea
LANGUAGE sql AS $$
	SELECT convert_to(s, 'UTF8')
		|| decode(repeat('00', n - octet_length(convert_to(s, 'UTF8'))), 'hex')
$$;
CREATE FUNCTION pg_temp.octal(n int, width int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	s text := '';
BEGIN
	LOOP
		s := (n % 8)::text || s;
		n := n / 8;
		EXIT WHEN n = 0;
	END LOOP;
	RETURN lpad(s, width, '0');
END
$$;
-- One member: type '0' file, '1' hard link, '2' symlink, '3' char device,
-- '5' directory, '6' fifo.
CREATE FUNCTION pg_temp.member(path text, body text DEFAULT '',
							   type text DEFAULT '0', link text DEFAULT '')
RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	data bytea := convert_to(body, 'UTF8');
	h bytea;
	total int;
BEGIN
	h := pg_temp.field(path, 100) || pg_temp.field('0000755', 8)
		|| pg_temp.field('0000000', 8) || pg_temp.field('0000000', 8)
		|| pg_temp.field(pg_temp.octal(length(data), 11), 12)
		|| pg_temp.field('00000000000', 12) || convert_to('        ', 'UTF8')
		|| convert_to(type, 'UTF8') || pg_temp.field(link, 100)
		|| pg_temp.field('ustar', 6) || convert_to('00', 'UTF8')
		|| decode(repeat('00', 247), 'hex');
	SELECT sum(get_byte(h, i)) INTO total FROM generate_series(0, 511) i;
	h := overlay(h PLACING pg_temp.field(pg_temp.octal(total, 6), 7)
				 || convert_to(' ', 'UTF8') FROM 149 FOR 8);
	RETURN h || data
		|| decode(repeat('00', (512 - length(data) % 512) % 512), 'hex');
END
$$;
CREATE FUNCTION pg_temp.tar(VARIADIC members bytea[]) RETURNS bytea
LANGUAGE sql AS $$
	SELECT string_agg(m, ''::bytea ORDER BY o) || decode(repeat('00', 1024), 'hex')
	  FROM unnest(members) WITH ORDINALITY AS u(m, o)
$$;

--
-- Deploy from source text: version 1, the alias live, default options.
--
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{}"\n');
SELECT fn, version, command, mode, memory_mb, timeout_ms, retries, aliases,
	   length(hash) = 64 AS sha256_hex, bundle_bytes % 512 = 0 AS tar_blocks
  FROM fx.version_list WHERE fn = 'dep-hello';
SELECT options FROM fx.version WHERE fn = 'dep-hello';
SELECT name, owner = current_user AS mine FROM fx.function WHERE name = 'dep-hello';

-- The same code again is the same version; so are options equal to the
-- defaults, since options are stored normalised.
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{}"\n');
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{}"\n', ARRAY['./main'],
				 '{"timeout_ms": 30000, "mode": "simple", "env": {}}');
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{}"\n', NULL, NULL);
SELECT count(*) AS versions FROM fx.version WHERE fn = 'dep-hello';

-- New code, a changed option and a changed command each make a version, and
-- live moves to it.
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{\\"v\\": 2}"\n');
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{\\"v\\": 2}"\n',
				 options => '{"timeout_ms": 5000}');
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{\\"v\\": 2}"\n',
				 ARRAY['/bin/sh', 'main'], '{"timeout_ms": 5000}');
-- Only the newest version is compared: going back to old code is new.
SELECT fx_deploy('dep-hello', E'#!/bin/sh\necho "{}"\n');
SELECT version, command, timeout_ms, aliases
  FROM fx.version_list WHERE fn = 'dep-hello' ORDER BY version;
SELECT count(DISTINCT hash) AS distinct_bundles,
	   bool_and(hash ~ '^[0-9a-f]{64}$') AS hex
  FROM fx.version WHERE fn = 'dep-hello';
SELECT a.hash = b.hash AS same_code
  FROM fx.version a, fx.version b
 WHERE a.fn = 'dep-hello' AND a.version = 1
   AND b.fn = 'dep-hello' AND b.version = 5;

-- Every option, normalised.
SELECT fx_deploy('dep-opts', 'print(1)', ARRAY['python3', 'main.py'],
				 '{"mode": "session", "memory_mb": 256, "timeout_ms": 1,
				   "retries": 0, "cpu": 0.5, "pids": 32, "tmp_mb": 0,
				   "net": true, "env": {"GREETING": "hi", "_X1": ""}}');
SELECT command, mode, memory_mb, timeout_ms, retries, options
  FROM fx.version WHERE fn = 'dep-opts';
SELECT fx_deploy('dep-opts', 'print(1)', ARRAY['python3', 'main.py'],
				 '{"env": {"_X1": "", "GREETING": "hi"}, "net": true,
				   "tmp_mb": 0, "pids": 32, "cpu": 0.50, "retries": 0,
				   "timeout_ms": 1, "memory_mb": 256, "mode": "session"}');

--
-- Deploy from a bytea bundle.
--
-- The bundle of a source deploy, deployed as bytea, is the same code.
SELECT fx_deploy('dep-copy', fx.bundle('dep-hello', 1));
SELECT c.hash = h.hash AS same_hash
  FROM fx.version c, fx.version h
 WHERE c.fn = 'dep-copy' AND h.fn = 'dep-hello' AND h.version = 1;
-- A directory, a file and a symbolic link inside the bundle.
SELECT fx_deploy('dep-tar',
				 pg_temp.tar(pg_temp.member('bin/', '', '5'),
							 pg_temp.member('bin/run', E'#!/bin/sh\ncat\n'),
							 pg_temp.member('main', '', '2', 'bin/run')));
SELECT fx_deploy('dep-tar',
				 pg_temp.tar(pg_temp.member('bin/', '', '5'),
							 pg_temp.member('bin/run', E'#!/bin/sh\ncat\n'),
							 pg_temp.member('main', '', '2', 'bin/run')));
SELECT version, bundle_bytes, aliases FROM fx.version_list WHERE fn = 'dep-tar';
-- Names that merely start with dots are fine.
SELECT fx_deploy('dep-dots', pg_temp.tar(pg_temp.member('...', 'x'),
										 pg_temp.member('..a', 'x'),
										 pg_temp.member('.hidden', 'x')));

-- Bundles that are not tar archives, or are unsafe to unpack.  libarchive's
-- own words vary across its versions: show only the primary message there.
\set VERBOSITY terse
SELECT fx_deploy('dep-bad', '\x00'::bytea);
SELECT fx_deploy('dep-bad', '\x0102030405'::bytea);
SELECT fx_deploy('dep-bad', ''::bytea);
SELECT fx_deploy('dep-bad', convert_to('#!/bin/sh' || chr(10) || 'echo', 'UTF8'));
SELECT fx_deploy('dep-bad',
				 substring(pg_temp.tar(pg_temp.member('main', repeat('x', 2000)))
						   FROM 1 FOR 1000));
\set VERBOSITY default
SELECT fx_deploy('dep-bad', decode(repeat('00', 1024), 'hex'));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('../main', 'x')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('/etc/cron.d/x', 'x')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('a/../../main', 'x')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('a/..', '', '5')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('main', 'x'),
										pg_temp.member('l', '', '2', '../../etc/passwd')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('l', '', '2', '/etc/passwd')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('main', 'x'),
										pg_temp.member('h', '', '1', 'main')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('fifo', '', '6')));
SELECT fx_deploy('dep-bad', pg_temp.tar(pg_temp.member('tty', '', '3')));
-- fx.max_bundle_size is checked before anything else.
SET fx.max_bundle_size = '1kB';
SELECT fx_deploy('dep-bad', decode(repeat('00', 2000), 'hex'));
RESET fx.max_bundle_size;

--
-- Bad names.
--
SELECT fx_deploy('', 'x');
SELECT fx_deploy('Hello', 'x');
SELECT fx_deploy('1st', 'x');
SELECT fx_deploy('-dash', 'x');
SELECT fx_deploy('has space', 'x');
SELECT fx_deploy('dep:1', 'x');
SELECT fx_deploy('dep/x', 'x');
SELECT fx_deploy('dép', 'x');
SELECT fx_deploy(repeat('a', 64), 'x');
SELECT fx_deploy(repeat('a', 63), 'x');

--
-- Null arguments.  A null command or options mean the defaults.
--
SELECT fx_deploy(NULL, 'x');
SELECT fx_deploy(NULL, '\x00'::bytea);
SELECT fx_deploy('dep-bad', NULL);
SELECT fx_deploy('dep-bad', NULL::text);
SELECT fx_deploy('dep-bad', NULL::bytea);
SELECT fx_deploy('dep-null', 'x', NULL, NULL);
SELECT command, options = (SELECT options FROM fx.version
						   WHERE fn = 'dep-hello' AND version = 1) AS defaults
  FROM fx.version WHERE fn = 'dep-null';

--
-- Bad commands.
--
SELECT fx_deploy('dep-bad', 'x', ARRAY[]::text[]);
SELECT fx_deploy('dep-bad', 'x', ARRAY['']);
SELECT fx_deploy('dep-bad', 'x', ARRAY[NULL]::text[]);
SELECT fx_deploy('dep-bad', 'x', ARRAY['./main', NULL]);
SELECT fx_deploy('dep-bad', 'x', ARRAY[['./main', 'a'], ['b', 'c']]);

--
-- Bad options.
--
SELECT fx_deploy('dep-bad', 'x', NULL, '[]');
SELECT fx_deploy('dep-bad', 'x', NULL, '"mode"');
SELECT fx_deploy('dep-bad', 'x', NULL, '5');
SELECT fx_deploy('dep-bad', 'x', NULL, 'null');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"memroy_mb": 128}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"mode": "fast"}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"mode": 1}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": -1}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": -0.5}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": 0}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": 86400001}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": 1.5}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"timeout_ms": "5000"}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"memory_mb": 8}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"memory_mb": 65537}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"memory_mb": null}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"retries": -1}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"retries": 101}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"pids": 0}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"tmp_mb": -1}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"cpu": 0}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"cpu": 1025}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"cpu": "1"}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"net": "yes"}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"net": 1}');

--
-- Environment variables.
--
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": "A=1"}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": ["A=1"]}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"A": 1}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"A": null}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"A": {"B": "c"}}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"1A": "x"}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"A-B": "x"}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"A=B": "x"}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"FX_ID": "x"}}');
SELECT fx_deploy('dep-bad', 'x', NULL, '{"env": {"": "x"}}');
SELECT fx_deploy('dep-bad', 'x', NULL,
				 jsonb_build_object('env', jsonb_build_object('BIG', repeat('x', 5000))));
SELECT fx_deploy('dep-env', 'x', NULL,
				 '{"env": {"PATH": "/usr/bin", "lower_case": "ok", "A1": "x=y"}}');
SELECT options->'env' AS env FROM fx.version WHERE fn = 'dep-env';

-- Nothing of a failed deploy is kept.
SELECT count(*) AS kept FROM fx.function WHERE name = 'dep-bad';
SELECT count(*) AS kept FROM fx.version WHERE fn = 'dep-bad';

--
-- Owner check: only the owner of a function (or an administrator) deploys
-- to it.  Deploying takes fx_deployer.
--
CREATE ROLE regress_fx_other;
SET ROLE regress_fx_other;
SELECT fx_deploy('dep-theirs', 'echo theirs');
RESET ROLE;
GRANT fx_deployer TO regress_fx_other;
SET ROLE regress_fx_other;
SELECT fx_deploy('dep-theirs', 'echo theirs');
SELECT fx_deploy('dep-theirs', 'echo theirs 2');
SELECT fx_deploy('dep-hello', 'echo hijacked');
RESET ROLE;
SELECT fx_deploy('dep-theirs', 'echo fixed by a superuser');
SELECT name, owner FROM fx.function
 WHERE name IN ('dep-hello', 'dep-theirs') ORDER BY name;
SELECT version, aliases FROM fx.version_list
 WHERE fn IN ('dep-hello', 'dep-theirs') AND 'live' = ANY (aliases)
 ORDER BY fn;
DROP OWNED BY regress_fx_other;
DROP ROLE regress_fx_other;

--
-- fx_alias: point a named alias at a version; live is an alias too.
--
SELECT fx_alias('dep-hello', 'beta', 2);
SELECT fx_alias('dep-hello', 'beta', 3);
SELECT fx_alias('dep-hello', 'live', 1);
SELECT version, aliases FROM fx.version_list
 WHERE fn = 'dep-hello' AND aliases <> '{}' ORDER BY version;
-- The next deploy moves live, and leaves other aliases alone.
SELECT fx_deploy('dep-hello', 'echo six');
SELECT version, aliases FROM fx.version_list
 WHERE fn = 'dep-hello' AND aliases <> '{}' ORDER BY version;
SELECT fx_alias('dep-hello', 'beta', 99);
SELECT fx_alias('dep-nope', 'beta', 1);
-- Aliases are lower-case names starting with a letter, so that "fn:7"
-- always means version 7.
DO $$
BEGIN
	PERFORM fx_alias('dep-hello', 'Beta', 1);
	RAISE NOTICE 'alias "Beta" accepted';
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'alias "Beta" rejected';
END
$$;
DO $$
BEGIN
	PERFORM fx_alias('dep-hello', '7', 1);
	RAISE NOTICE 'alias "7" accepted';
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'alias "7" rejected';
END
$$;
SELECT count(*) AS bad_aliases FROM fx.alias WHERE alias IN ('Beta', '7');
-- fx_alias is strict: a null argument does nothing.
SELECT fx_alias(NULL, 'beta', 1) IS NULL AS noop,
	   fx_alias('dep-hello', NULL, 1) IS NULL AS noop,
	   fx_alias('dep-hello', 'beta', NULL) IS NULL AS noop;

-- fx.bundle returns the stored code; NULL for a version that does not exist.
SELECT fx.bundle('dep-hello', 1) = bundle AS same FROM fx.version
 WHERE fn = 'dep-hello' AND version = 1;
SELECT fx.bundle('dep-hello', 99) IS NULL AS missing;
