#!/usr/bin/env bash
# tests/image/run.sh: worker/fx_image.c against hand-built images.
#
# Run from anywhere as root (it chroots into an unpacked image).  Builds the
# driver tests/image/image_test.c with the worker's warning flags, makes the
# images with tests/image/mkimage.py (python3 stdlib only: no Docker, no
# network), unpacks them and checks the root file systems and configs.
# Hostile images must be refused, or neutralised, without touching the host:
# their links point at a scratch directory whose state is compared before
# and after, and /etc is checked too.  Ends with the driver under valgrind.
# Prints "ok - ..." / "not ok - ..." and exits non-zero if a check failed.
#
# Checks that need more than one command are passed to check as eval
# strings, expanded when they run.
# shellcheck disable=SC2012,SC2016,SC2034,SC2317
set -u
cd "$(dirname "$0")/../.." || exit 1
work=$(mktemp -d /tmp/fx-image-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
cache=$work/cache
images=$work/images
victim=$work/victim
bin=$work/image_test
chroot=$(PATH=$PATH:/usr/sbin:/sbin command -v chroot)
failed=0
out=

pass() { echo "ok - $*"; }
flunk() { echo "not ok - $*"; failed=1; }
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else flunk "$what"; fi
}

# unpack KEY [ARCHIVE]: fx_image_prepare; its output in $out.
unpack() {
	out=$("$bin" "$cache" "$@" 2>>"$work/stderr")
}
field() { sed -n "s/^$1=//p" <<<"$out"; }
snapshot() { find "$victim" -printf '%p %y %s %n %m\n' | sort; }
no_leftovers() { [ -z "$(find "$cache" -maxdepth 2 -name '*.tmp-*')" ]; }

warn=(-Wall -Wextra -Werror -Werror=shadow -Werror=missing-prototypes
	-Werror=strict-prototypes -Werror=format=2 -Wswitch-enum -Wno-unused-parameter)
# shellcheck disable=SC2046
if cc -g -O1 -I worker -I include "${warn[@]}" -o "$bin" tests/image/image_test.c \
	worker/fx_image.c worker/fx_log.c worker/fx_bundle.c \
	$(pkg-config --cflags --libs libcjson libarchive) 2>"$work/cc.log"; then
	pass "driver and fx_image.c build warning-free"
else
	cat "$work/cc.log"
	flunk "driver and fx_image.c build warning-free"
	exit 1
fi
mkdir -p "$cache" "$victim/sub"
echo keep >"$victim/keep"
echo sub >"$victim/sub/file"
if ! python3 tests/image/mkimage.py "$images" "$victim"; then
	flunk "images build"
	exit 1
fi
pass "images build (docker save, OCI layout, nested OCI index, hostile)"
echo "# the 1 GiB bombs are $(stat -c %s "$images/gzbomb.tar" "$images/layer-bomb.tar" | tr '\n' ' ')bytes"
before=$(snapshot)
etc_before=$(sha256sum /etc/passwd /etc/group)

# good NAME USER UID GID: the well-formed image, each packaging.
good() {
	local name=$1 user=$2 uid=$3 gid=$4 key=$1 r first
	if ! unpack "$key" "$images/$name.tar"; then
		flunk "$name: unpacks ($out)"
		return
	fi
	pass "$name: unpacks"
	r=$(field rootfs)
	check "$name: rootfs is CACHE/$key/rootfs" [ "$r" = "$(realpath "$cache")/$key/rootfs" ]
	check "$name: Entrypoint" [ "$(field entrypoint)" = "/bin/sh|/app/hello.sh" ]
	check "$name: Cmd" [ "$(field cmd)" = "--flag|two words" ]
	check "$name: Env" [ "$(field env)" = "PATH=/usr/bin:/bin|GREETING=fx" ]
	check "$name: WorkingDir" [ "$(field workdir)" = /app ]
	check "$name: User \"$user\" -> $uid:$gid" \
		[ "$(field user):$(field uid):$(field gid)" = "$user:$uid:$gid" ]
	check "$name: layer 1 files present" \
		test -x "$r/usr/bin/sh" -a -f "$r/etc/passwd" -a -f "$r/keepdir/keep"
	check "$name: implicit parent directories made" test -d "$r/usr/lib64"
	check "$name: relative symlink kept (bin -> usr/bin)" [ "$(readlink "$r/bin")" = usr/bin ]
	check "$name: absolute symlink kept (lib64 -> /usr/lib64)" \
		[ "$(readlink "$r/lib64")" = /usr/lib64 ]
	check "$name: hard link made inside the rootfs" \
		[ "$(stat -c %i "$r/app/hello.sh")" = "$(stat -c %i "$r/app/hello-link")" ]
	check "$name: whiteout removed etc/removeme" [ ! -e "$r/etc/removeme" ]
	check "$name: whiteout removed directory olddir" [ ! -e "$r/olddir" ]
	check "$name: no .wh. file created" \
		[ -z "$(find "$r" -name '.wh.*' -print -quit)" ]
	check "$name: opaque dir holds only layer 2's entries" \
		[ "$(cd "$r/opq" && ls -A | tr '\n' ' ')" = "after new " ]
	check "$name: file replaced by layer 2" [ "$(cat "$r/replaced")" = layer2 ]
	check "$name: directory replaced by a file" \
		eval '[ -f "$r/dir2file" ] && [ "$(cat "$r/dir2file")" = "now a file" ]'
	check "$name: replacing a hard-linked file leaves the other name alone" \
		[ "$(cat "$r/app/shared"):$(cat "$r/app/shared-link")" = v2:v1 ]
	check "$name: /tmp keeps its sticky bit" [ "$(stat -c %a "$r/tmp")" = 1777 ]
	check "$name: ownership not restored (uid 4321 in the tar)" \
		[ "$(stat -c %u:%g "$r/etc/passwd")" = "$(id -u):$(id -g)" ]
	check "$name: no temporary directory left" no_leftovers
	check "$name: its /bin/sh runs in a chroot" \
		[ "$(env -i GREETING=fx "$chroot" "$r" /bin/sh -c 'cd /app && exec /bin/sh /app/hello.sh')" \
		= "hello from fx in /app" ]
	first=$out
	check "$name: cached: same result without the archive" \
		eval 'unpack "$key" && [ "$out" = "$first" ]'
	check "$name: cached: the archive is not read again" \
		eval 'unpack "$key" "$images/garbage.tar" && [ "$out" = "$first" ]'
}

# refused NAME PATTERN [VAR=VALUE]: must fail saying PATTERN, leave nothing.
refused() {
	local name=$1 pattern=$2 key=h-$1
	if env ${3:+"$3"} "$bin" "$cache" "$key" "$images/$name.tar" >"$work/o" 2>>"$work/stderr"; then
		flunk "$name: refused (it unpacked)"
		return
	fi
	out=$(cat "$work/o")
	if grep -q -- "$pattern" <<<"$out"; then
		pass "$name: refused: ${out#error: }"
	else
		flunk "$name: refused saying \"$pattern\" (got: $out)"
	fi
	check "$name: nothing left in CACHE/$key" [ -z "$(ls -A "$cache/$key")" ]
}

good good-docker "1000:1000" 1000 1000
good good-oci app 1234 2345
good good-oci-nested "app:staff" 1234 50
good good-oci-plain 1234 1234 2345
gzip -c "$images/good-docker.tar" >"$images/good-docker-gz.tar"
check "docker save output compressed as a whole" \
	eval 'unpack gz "$images/good-docker-gz.tar" && [ "$(field uid)" = 1000 ] && [ -f "$(field rootfs)/newfile" ]'

check "unknown key without an archive fails" \
	eval '! unpack nosuchkey && grep -q "not unpacked" <<<"$out"'
check "a key that is not one path component is refused" \
	eval '! unpack ../escape "$images/good-oci.tar" && grep -q "not valid" <<<"$out"'
check "a name looked up through an absolute /etc/passwd link stays in the image" \
	eval 'unpack passwd-link "$images/passwd-link.tar" && [ "$(field uid):$(field gid)" = 777:778 ]'
refused nouser "not in the image's /etc/passwd"

# Four workers unpack one key at once: all succeed, one rootfs, no debris.
for i in 1 2 3 4; do
	"$bin" "$cache" race "$images/good-oci.tar" >"$work/race.$i" 2>&1 &
done
racefail=0
for i in 1 2 3 4; do
	wait -n || racefail=1
done
check "4 concurrent unpacks of one key all succeed" [ $racefail -eq 0 ]
check "... leaving only config.json and rootfs" \
	[ "$(ls -A "$cache/race" | tr '\n' ' ')" = "config.json rootfs " ]

refused dotdot "points outside the root file system"
refused absolute "points outside the root file system"
check "no ../../etc/fx-image-dotdot or /etc/fx-image-absolute written" \
	test ! -e /etc/fx-image-dotdot -a ! -e /etc/fx-image-absolute -a ! -e "$cache/etc"
refused symlink-victim "beneath a symbolic link"
refused symlink-2layers "beneath a symbolic link"
refused hardlink-absolute "points outside the root file system"
refused hardlink-dotdot "points outside the root file system"
refused hardlink-via-link "beneath a symbolic link"
check "a hard link to a symbolic link links the link, not its target" \
	eval 'unpack hl2l "$images/hardlink-to-link.tar" && [ -L "$(field rootfs)/x" ]'
check "a directory replaced by a link in the same layer" \
	eval 'unpack dtl "$images/dir-then-link.tar" && [ -L "$(field rootfs)/d" ]'
check "whiteouts through a link to a host directory" unpack wol "$images/whiteout-through-link.tar"
check "the host directory behind the links is untouched" [ "$(snapshot)" = "$before" ]
if [ "$(snapshot)" = "$before" ]; then
	# Only now, the same attack aimed at the real /etc.
	refused symlink-etc "beneath a symbolic link"
fi
check "host /etc/passwd and /etc/group unchanged" [ "$(sha256sum /etc/passwd /etc/group)" = "$etc_before" ]
check "whiteouts named .wh.., .wh... are ignored" \
	eval 'unpack wdots "$images/whiteout-dots.tar" && [ -f "$(field rootfs)/a/keepme" ]'
if unpack devices "$images/devices.tar"; then
	r=$(field rootfs)
	check "devices and fifos skipped, regular file kept" \
		test ! -e "$r/dev/null" -a ! -e "$r/dev/sda" -a ! -e "$r/fifo" -a -f "$r/regular"
else
	flunk "image with device nodes unpacks ($out)"
fi
if unpack setid "$images/setid.tar"; then
	r=$(field rootfs)
	check "setuid and setgid bits cleared (4755 -> 755, 2755 -> 755, 2775 -> 775)" \
		[ "$(stat -c %a "$r/su" "$r/sg" "$r/sgdir" | tr '\n' ' ')" = "755 755 775 " ]
else
	flunk "image with setuid files unpacks ($out)"
fi
refused bomb "more than 1048576 bytes" FX_IMAGE_MAX_BYTES=1048576
refused huge "more than 4294967296 bytes"
refused sparse "more than 4294967296 bytes"
refused many "more than 10 entries" FX_IMAGE_MAX_ENTRIES=10
# refused_fast NAME PATTERN SECONDS [VAR=VALUE]: refused, and within SECONDS.
refused_fast() {
	local t0=$EPOCHREALTIME ms
	refused "$1" "$2" ${4:+"$4"}
	ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
	check "$1: refused in $ms ms (< $3 s)" [ "$ms" -lt $(($3 * 1000)) ]
}
refused_fast gzbomb "decompresses to more than 268435456 bytes (100 times its archive of" 5
refused_fast layer-bomb "decompresses to more than 268435456 bytes" 5
refused_fast whiteout-bomb "decompresses to more than 268435456 bytes" 5
refused_fast bomb "decompresses to more than 16777216 bytes (FX_IMAGE_MAX_READ)" 5 FX_IMAGE_MAX_READ=16777216
refused many-layers "more than 128 layers (200)"
refused deep "nested too deeply"
refused garbage "not a tar archive"
refused empty "neither manifest.json (docker save) nor index.json"
refused oci-missing-blob "no member \"blobs/sha256/eeee"
refused missing-layer "no member \"nope/layer.tar\""
check "no temporary directories left anywhere" no_leftovers

if command -v valgrind >/dev/null; then
	vg=(valgrind -q --error-exitcode=99 --leak-check=full)
	check "valgrind: OCI image, fresh" \
		eval '"${vg[@]}" "$bin" "$cache" vg-oci "$images/good-oci.tar" >/dev/null 2>>"$work/valgrind"'
	check "valgrind: docker image, fresh" \
		eval '"${vg[@]}" "$bin" "$cache" vg-docker "$images/good-docker.tar" >/dev/null 2>>"$work/valgrind"'
	check "valgrind: cache hit" \
		eval '"${vg[@]}" "$bin" "$cache" vg-oci >/dev/null 2>>"$work/valgrind"'
	check "valgrind: refused image" \
		eval '"${vg[@]}" "$bin" "$cache" vg-bad "$images/symlink-2layers.tar" >/dev/null 2>>"$work/valgrind"; [ $? -eq 1 ]'
	[ -s "$work/valgrind" ] && sed 's/^/# /' "$work/valgrind"
else
	echo "ok - valgrind # skip: not installed"
fi

[ -s "$work/stderr" ] && sed 's/^/# stderr: /' "$work/stderr"
exit $failed
