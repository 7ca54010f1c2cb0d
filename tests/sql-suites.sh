#!/usr/bin/env bash
#
# tests/sql-suites.sh: run the pg_regress suite (tests/regress) and the
# isolation suite (tests/isolation) of the fx extension, each against a
# temporary instance.
#
# Usage: bash tests/sql-suites.sh     (from anywhere; as root or as any user)
#
# As root, the suites run as the OS user postgres (initdb and postgres refuse
# root) from a staging copy under /tmp, since the repository itself may not
# be readable by postgres.  Prints one TAP-like line per test,
# "ok - regress/NAME" or "not ok - regress/NAME", likewise isolation/NAME,
# prints regression.diffs on failure and exits non-zero if anything failed.
#
# Environment:
#   PG_CONFIG=path       pg_config of the PostgreSQL to test (default: in PATH)
#   FX_SKIP_INSTALL=1    do not run "make -C extension install" first
#   FX_KEEP=1            keep the staging directory (kept anyway on failure)
#   VALGRIND=1           run the regress suite's server under valgrind
#                        (memcheck); errors whose stack passes through fx.so
#                        fail the run, as the test "valgrind/regress"
#
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir) || exit 2
pgxs_test=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test
pg_regress=$pgxs_test/regress/pg_regress
pg_isolation_regress=$pgxs_test/isolation/pg_isolation_regress

if [ "$(id -u)" = 0 ]; then
	run_as=(runuser -u postgres --)
	owner=postgres
else
	run_as=()
	owner=$(id -un)
fi

failed=0
total=0
nfailed=0

note() { printf '# %s\n' "$*"; }

stage=$(mktemp -d /tmp/fx-sql-suites.XXXXXX) || exit 2

if [ "${FX_SKIP_INSTALL:-0}" != 1 ]; then
	if ! make -s -C "$repo/extension" PG_CONFIG="$PG_CONFIG" install \
		>"$stage/install.log" 2>&1; then
		echo "not ok - install"
		sed 's/^/# /' "$stage/install.log"
		note "staging directory kept: $stage"
		exit 1
	fi
fi

cp -R "$repo/tests/regress" "$stage/regress"
cp -R "$repo/tests/isolation" "$stage/isolation"
cp "$repo/tests/fx.conf" "$stage/fx.conf"
rm -rf "$stage/regress/results" "$stage/isolation/output_iso" \
	"$stage"/regress/regression.* "$stage"/isolation/regression.*
chown -R "$owner" "$stage"
chmod 755 "$stage"

# Test names, in file-name order.
names() {
	local dir=$1 ext=$2 f
	for f in "$dir"/*."$ext"; do
		[ -e "$f" ] || continue
		f=${f##*/}
		printf '%s\n' "${f%."$ext"}"
	done
}

# VALGRIND=1: a bin directory like the real one whose postgres is valgrind
# running the real postgres.  initdb and psql resolve their symlinks and so
# run plain; only the server the tests talk to runs under valgrind.
regress_bindir=$bindir
if [ "${VALGRIND:-0}" = 1 ]; then
	if ! command -v valgrind >/dev/null; then
		echo "not ok - valgrind/regress # valgrind is not installed"
		exit 1
	fi
	regress_bindir=$stage/valgrind-bin
	mkdir -p "$regress_bindir" "$stage/valgrind"
	for f in "$bindir"/*; do
		ln -s "$f" "$regress_bindir/${f##*/}"
	done
	rm "$regress_bindir/postgres"
	cat >"$regress_bindir/postgres" <<EOF
#!/bin/sh
exec valgrind --quiet --tool=memcheck --trace-children=yes \\
	--leak-check=no --track-origins=yes --num-callers=40 \\
	--log-file=$stage/valgrind/%p.log \\
	"$bindir/postgres" "\$@"
EOF
	chmod 755 "$regress_bindir/postgres"
	chown -R "$owner" "$regress_bindir" "$stage/valgrind"
	export PGCTLTIMEOUT=600
fi

# run_suite KIND DRIVER BINDIR TESTS...
run_suite() {
	local kind=$1 driver=$2 suite_bindir=$3
	shift 3
	local dir=$stage/$kind log=$stage/$kind/run.log rc name result

	if [ $# = 0 ]; then
		note "no $kind tests"
		return
	fi
	(cd "$dir" && "${run_as[@]}" "$driver" \
		--bindir="$suite_bindir" \
		--temp-instance="$stage/tmp_check_$kind" \
		--temp-config="$stage/fx.conf" \
		--inputdir="$dir" --outputdir="$dir" \
		--load-extension=fx \
		"$@") >"$log" 2>&1
	rc=$?
	for name in "$@"; do
		result=$(sed -n -E "s/^(test |     )?$name +\.\.\. +(ok|FAILED|failed).*/\2/p" "$log" | head -n 1)
		total=$((total + 1))
		if [ "$result" = ok ]; then
			echo "ok - $kind/$name"
		else
			echo "not ok - $kind/$name"
			failed=1
			nfailed=$((nfailed + 1))
		fi
	done
	if [ $rc != 0 ]; then
		failed=1
		note "$kind: $driver exited with status $rc"
		sed 's/^/# /' "$log"
		if [ -f "$dir/regression.diffs" ]; then
			note "$dir/regression.diffs:"
			cat "$dir/regression.diffs"
		fi
		# Status 1 is "some tests failed"; anything else means the run broke.
		if [ $rc != 1 ] && [ -f "$dir/log/postmaster.log" ]; then
			note "last lines of $dir/log/postmaster.log:"
			tail -n 30 "$dir/log/postmaster.log" | sed 's/^/# /'
		fi
	fi
}

mapfile -t regress_tests < <(names "$stage/regress/sql" sql)
mapfile -t isolation_tests < <(names "$stage/isolation/specs" spec)

run_suite regress "$pg_regress" "$regress_bindir" "${regress_tests[@]}"

if [ "${VALGRIND:-0}" = 1 ]; then
	# Only errors in fx's code count: without PostgreSQL's own suppression
	# file (src/tools/valgrind.supp, not installed by packages) the server
	# reports some known, harmless ones of its own.
	total=$((total + 1))
	vg_errors=$(grep -l -E 'fx\.so|fx_[a-z]+\.c' "$stage"/valgrind/*.log 2>/dev/null)
	if ! ls "$stage"/valgrind/*.log >/dev/null 2>&1; then
		echo "not ok - valgrind/regress # the server did not run under valgrind"
		failed=1
		nfailed=$((nfailed + 1))
	elif [ -z "$vg_errors" ]; then
		echo "ok - valgrind/regress"
	else
		echo "not ok - valgrind/regress"
		failed=1
		nfailed=$((nfailed + 1))
		for f in $vg_errors; do
			note "$f:"
			cat "$f"
		done
	fi
fi

run_suite isolation "$pg_isolation_regress" "$bindir" "${isolation_tests[@]}"

note "$((total - nfailed)) of $total tests passed"
if [ $failed = 0 ] && [ "${FX_KEEP:-0}" != 1 ]; then
	rm -rf "$stage"
else
	note "staging directory kept: $stage"
fi
exit $failed
