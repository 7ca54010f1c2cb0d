#!/usr/bin/env bash
# bench/merge-results.sh: bench/RESULTS.md = the queue scenarios written by
# bench/run.sh (bench/queue-results.md) followed by the "Sandboxes" section
# that bench/sandbox.sh keeps in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
sandboxes=$(sed -n '/^## Sandboxes *$/,$p' RESULTS.md 2>/dev/null || true)
{
	cat queue-results.md
	if [ -n "$sandboxes" ]; then
		echo
		echo "$sandboxes"
	fi
} >RESULTS.md.new
mv RESULTS.md.new RESULTS.md
