#!/usr/bin/env bash
# scripts/run.sh (make run): start the embedded default, deploy the examples,
# invoke them and print what they return.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/bin:$PATH
unset PGHOST PGDATABASE PGPORT PGSERVICE PGUSER FX_DB

fx up
echo
fx deploy hello examples/hello --cmd ./main
fx deploy hello-c examples/hello-c --cmd ./hello --mode session
fx deploy hello-py examples/hello-py --cmd "python3 main.py" --mode session
echo
for fn in hello hello-c hello-py; do
	printf '$ fx invoke %s %s\n' "$fn" "'{\"name\":\"fx\"}'"
	fx invoke "$fn" '{"name":"fx"}'
done
echo
echo "\$ fx psql -c \"SELECT fx_call('hello', '{\\\"name\\\":\\\"x\\\"}')\""
fx psql -X -c "SELECT fx_call('hello', '{\"name\":\"x\"}')"
echo "fx is still running: 'fx ps' lists invocations, 'fx down' stops it."
