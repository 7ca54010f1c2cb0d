#!/usr/bin/env bash
# bench/merge-results.sh: bench/RESULTS.md = the queue scenarios written by
# bench/run.sh (bench/queue-results.md), then the "Sandboxes" section that
# bench/sandbox.sh keeps in RESULTS.md, then the "Keyed functions and
# co-located SQL" section that bench/keyed.sh keeps there, then the
# "Workflows: fx and DBOS Transact" section that bench/workflow.sh writes to
# bench/workflow-results.md (without that file, the section already in
# RESULTS.md, if any, is kept).  Each kept section runs from its heading to
# the next "## " heading; running this again changes nothing.
set -euo pipefail
cd "$(dirname "$0")"

# section HEADING: that section of RESULTS.md ($(...) drops its trailing
# blank lines).
section() {
	[ -f RESULTS.md ] || return 0
	awk -v head="$1" '
		/^## / { h = $0; sub(/[ \t]+$/, "", h); on = (h == head) }
		on { print }' RESULTS.md
}

sandboxes=$(section "## Sandboxes")
keyed=$(section "## Keyed functions and co-located SQL")
if [ -f workflow-results.md ]; then
	workflows=$(cat workflow-results.md)
else
	workflows=$(section "## Workflows: fx and DBOS Transact")
fi
{
	cat queue-results.md
	for s in "$sandboxes" "$keyed" "$workflows"; do
		if [ -n "$s" ]; then
			echo
			printf '%s\n' "$s"
		fi
	done
} >RESULTS.md.new
mv RESULTS.md.new RESULTS.md
