#!/usr/bin/env bash
# fuzz/run.sh [TARGET...]: build the libFuzzer targets, run each for
# FUZZ_SECONDS (default 600), print "ok - fuzz/T: N runs, no crash" or
# "not ok - fuzz/T: ..." with the reproducer, and exit non-zero if any
# target failed.  Targets: fuzz_protocol fuzz_image fuzz_http fuzz_cron
# (all by default).
#
# Each run starts from a scratch copy of fuzz/corpus/T in BUILD/run/T/corpus,
# so the repository's corpus does not grow; with FUZZ_SAVE=1 the inputs
# that found new coverage are merged back into fuzz/corpus/T (-merge=1).
# Crashes go to BUILD/run/T/artifacts/.  fuzz_image runs, when this is root,
# in a private mount namespace where everything but BUILD/run/T is read-only
# and its scratch space a small tmpfs: a bug it finds cannot write to the host.
# FUZZ_FLAGS adds libFuzzer options (e.g. -jobs=2, -only_ascii=1).
set -u
cd "$(dirname "$0")" || exit 1
here=$(pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
BUILD=${BUILD:-$here/../build/fuzz}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_protocol fuzz_image fuzz_http fuzz_cron)
failed=0

if ! command -v clang >/dev/null; then
	echo "not ok - fuzz: clang is not installed (scripts/deps.sh)"
	exit 1
fi

# sandboxed DIR CMD...: CMD with all but DIR read-only and a private /tmp.
sandboxed() {
	local dir=$1
	shift
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
		return
	fi
	if ! unshare --mount true 2>/dev/null; then
		echo "fuzz_image: root, but no mount namespace (unshare -m): not unpacking hostile images"
		return 1
	fi
	# shellcheck disable=SC2016
	unshare --mount --propagation private bash -c '
		dir=$1
		shift
		# The scratch space is a tmpfs inside DIR, not over /tmp: the tree
		# (and DIR) may itself live under /tmp, as in a CI clone.
		mkdir -p "$dir/scratch" || exit 3
		mount --bind "$dir" "$dir" || exit 3
		mount -t tmpfs -o size=512m,mode=1777 fx-fuzz "$dir/scratch" || exit 3
		findmnt -rno TARGET | while read -r m; do
			case $m in
			/proc* | /sys* | /dev* | "$dir" | "$dir"/*) ;;
			*) mount -o remount,bind,ro "$m" 2>/dev/null ;;
			esac
		done
		export TMPDIR=$dir/scratch FX_FUZZ_IMAGE_DIR=$dir/scratch/image
		exec "$@"' fuzz-sandbox "$dir" "$@"
}

# run T: one target, one result line.
run() {
	local t=$1 dir=$BUILD/run/$1 log=$BUILD/run/$1/fuzz.log
	local opts=(-max_total_time="$FUZZ_SECONDS" -timeout=30 -rss_limit_mb=2560
		-artifact_prefix="$dir/artifacts/" -print_final_stats=1)
	local rc runs cov crash

	rm -rf "$dir/corpus" "$dir/artifacts"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp corpus/"$t"/* "$dir/corpus/"
	[ -f "$t.dict" ] && opts+=(-dict="$here/$t.dict")
	[ "$t" = fuzz_image ] && opts+=(-max_len=65536)
	# shellcheck disable=SC2086
	if [ "$t" = fuzz_image ]; then
		FX_FUZZ_IMAGE_DIR=/tmp/fx-fuzz-image sandboxed "$dir" \
			"$BUILD/$t" "${opts[@]}" ${FUZZ_FLAGS:-} "$dir/corpus" >"$log" 2>&1
	else
		FX_FUZZ_HTTP_SAVE=$dir/artifacts \
			"$BUILD/$t" "${opts[@]}" ${FUZZ_FLAGS:-} "$dir/corpus" >"$log" 2>&1
	fi
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+')
	# fuzz_http names a connection it checked late: that input, not the last
	crash=$(find "$dir/artifacts" -type f -name 'fuzz_http-input-*' | head -1)
	[ -n "$crash" ] || crash=$(find "$dir/artifacts" -type f | head -1)
	if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
		echo "ok - fuzz/$t: ${runs:-0} runs in ${FUZZ_SECONDS} s, no crash (${cov:-no coverage line})"
		if [ "${FUZZ_SAVE:-0}" = 1 ]; then
			if [ "$t" = fuzz_image ]; then
				FX_FUZZ_IMAGE_DIR=/tmp/fx-fuzz-image sandboxed "$here/corpus/$t" \
					"$BUILD/$t" -merge=1 -max_len=65536 "$here/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1
			else
				"$BUILD/$t" -merge=1 "$here/corpus/$t" "$dir/corpus" >"$dir/merge.log" 2>&1
			fi
			echo "# fuzz/$t: $(tail -1 "$dir/merge.log")"
		fi
	else
		failed=1
		echo "not ok - fuzz/$t: $(grep -m1 -E '^(SUMMARY|==[0-9]+==ERROR|fuzz_)' "$log" || echo "exit status $rc")"
		echo "#   reproducer: ${crash:-none written}; log: $log"
		echo "#   replay: $BUILD/$t $crash"
		grep -E '^(fuzz_|==|    #[0-9] |SUMMARY)' "$log" | head -40 | sed 's/^/#   /'
	fi
}

for t in "${targets[@]}"; do
	if [ ! -d "corpus/$t" ]; then
		echo "not ok - fuzz/$t: no such target"
		failed=1
		continue
	fi
	if ! make -s BUILD="$BUILD" TARGETS="$t" >"$BUILD/build-$t.log" 2>&1; then
		sed 's/^/# /' "$BUILD/build-$t.log" | tail -20
		echo "not ok - fuzz/$t: build (log: $BUILD/build-$t.log)"
		failed=1
		continue
	fi
	run "$t"
done
exit $failed
