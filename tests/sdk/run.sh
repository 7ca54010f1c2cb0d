#!/bin/bash
# tests/sdk/run.sh: test the function SDKs (include/fx.h, sdk/python/fx.py)
# and the examples against tests/sdk/fake_worker.py, which plays the worker's
# side of docs/protocol.md.  Run from the repository root:
#
#	bash tests/sdk/run.sh
#
# Prints "ok - ..." or "not ok - ..." per check, then "N passed, N failed";
# exits 1 if any check failed.  Needs cc, libcjson-dev, python3, valgrind.

set -u
cd "$(dirname "$0")/../.." || exit 2

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

report()
{
	if [ "$1" -eq 0 ]; then
		echo "ok - $2"
		passed=$((passed + 1))
	else
		echo "not ok - $2"
		failed=$((failed + 1))
	fi
}

# Run one fake_worker.py suite, counting the lines it prints.
suite()
{
	local line rc=none bad=0

	# The last line is "exit N", N being fake_worker.py's exit status.
	while IFS= read -r line; do
		case $line in
			"ok - "*) passed=$((passed + 1)) ;;
			"not ok - "*) failed=$((failed + 1)); bad=1 ;;
			"exit "*) rc=${line#exit }; continue ;;
		esac
		echo "$line"
	done < <(python3 tests/sdk/fake_worker.py "$@" 2>"$tmp/stderr"; \
			 echo "exit $?")
	if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
		sed 's/^/# /' "$tmp/stderr"
		report 1 "fake_worker.py $* ran (exit $rc)"
	fi
}

# An echo function per SDK: its context and args back, "boom" fails.
cat >"$tmp/echo.c" <<'C'
#include <fx.h>

static cJSON *
echo(fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *r;

	if (cJSON_IsString(args) && strcmp(args->valuestring, "null") == 0)
		return NULL;
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double) fx_invocation_id(ctx));
	cJSON_AddNumberToObject(r, "attempt", fx_attempt(ctx));
	cJSON_AddStringToObject(r, "idempotency_key", fx_idempotency_key(ctx));
	if (fx_key(ctx))
		cJSON_AddStringToObject(r, "key", fx_key(ctx));
	else
		cJSON_AddNullToObject(r, "key");
	cJSON_AddNumberToObject(r, "deadline", (double) fx_deadline_ms(ctx));
	cJSON_AddStringToObject(r, "fn", fx_fn(ctx));
	cJSON_AddItemToObject(r, "args", cJSON_Duplicate(args, 1));
	if (cJSON_IsString(args) && strcmp(args->valuestring, "boom") == 0)
	{
		fx_fail(ctx, "first", NULL, 0);
		fx_fail(ctx, "boom", "a detail", 1);
		return r;				/* dropped by the SDK after fx_fail */
	}
	return r;
}

int
main(void)
{
	return fx_main(echo);
}
C
cat >"$tmp/echo.py" <<'PY'
import fx

def echo(args, ctx):
    if args == "null":
        return None
    if args == "boom":
        return 1 / 0
    if args == "set":
        return {1, 2}
    return {"id": ctx.id, "attempt": ctx.attempt,
            "idempotency_key": ctx.idempotency_key, "key": ctx.key,
            "deadline": ctx.deadline, "fn": ctx.fn, "args": args}

fx.run(echo)
PY

make -s -C examples/hello-c >"$tmp/make.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/make.log"
report $rc "make -C examples/hello-c"

cc -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-std=c99 -pedantic -O2 -Iinclude -o "$tmp/echo" "$tmp/echo.c" -lcjson \
	>"$tmp/cc.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/cc.log"
report $rc "fx.h compiles cleanly as C99 with strict warnings"

# tests/sdk/requests.c sends state and sql requests (fake_worker.py answers).
cc -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-std=c99 -pedantic -O2 -Iinclude -o "$tmp/requests" tests/sdk/requests.c \
	-lcjson >"$tmp/cc.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/cc.log"
report $rc "tests/sdk/requests.c compiles cleanly with fx_sql and fx_state_*"

# tests/sdk/workflows.c records workflow steps (fake_worker.py answers).
cc -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-std=c99 -pedantic -O2 -Iinclude -o "$tmp/workflows" \
	tests/sdk/workflows.c -lcjson >"$tmp/cc.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/cc.log"
report $rc "tests/sdk/workflows.c compiles cleanly with the workflow steps"

suite simple
suite session hello-c
suite session hello-py
suite errors hello-c
suite errors hello-py
suite sdk c "$tmp/echo"
suite sdk py python3 "$tmp/echo.py"
suite requests c "$tmp/requests"
suite requests py python3 tests/sdk/requests.py
suite workflows c "$tmp/workflows"
suite workflows py python3 tests/sdk/workflows.py
suite valgrind hello-c
suite sdk c valgrind --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=all -q "$tmp/echo"
suite requests c valgrind --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=all -q "$tmp/requests"
suite workflows c valgrind --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=all -q "$tmp/workflows"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
