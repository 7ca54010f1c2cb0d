#!/usr/bin/env bash
# fuzz/mkcorpus.sh: write the seed corpora fuzz/corpus/<target>/ afresh.
#
# Protocol seeds are framed messages (docs/protocol.md) after one byte that
# fuzz_protocol reads as the size of the pieces the stream arrives in; HTTP
# seeds are requests after the same byte.
# Image seeds are layers made with GNU tar (a byte saying "layers, config
# User N" first, layers separated by --fx-layer--) or whole images made
# with tar (byte 0 first); the hostile ones aim at /etc and at the canary
# fuzz_image keeps beside its cache (/tmp/fx-fuzz-image/canary under
# fuzz/run.sh, and ../../../canary from the rootfs).  Run as root to get
# the device node seed.  Seeds are kept small: the corpus lives in git.
# shellcheck disable=SC2016 # JSON and SQL in single quotes, $1 included
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C
here=$(pwd)
work=$(mktemp -d /tmp/fx-mkcorpus.XXXXXX)
trap 'rm -rf "$work"' EXIT
P=$here/corpus/fuzz_protocol
I=$here/corpus/fuzz_image
rm -rf "$P" "$I"
mkdir -p "$P" "$I"

# --- fuzz_protocol -------------------------------------------------------

# byte N: one byte of value N (0-255).
byte() { printf '%b' "\\x$(printf %02x "$1")"; }
# frame JSON: the 4-byte big-endian length, then the text.
frame() {
	local n=${#1}
	byte $((n >> 24 & 255))
	byte $((n >> 16 & 255))
	byte $((n >> 8 & 255))
	byte $((n & 255))
	printf '%s' "$1"
}
# seed NAME CHUNK MESSAGE...: CHUNK is the piece size minus one (0-255).
seed() {
	local name=$1 chunk=$2
	shift 2
	{
		byte "$chunk"
		for m in "$@"; do frame "$m"; done
	} >"$P/$name"
}
seed ready 255 '{"type":"ready","protocol":1}'
seed result 0 '{"type":"ready","protocol":1}' \
	'{"type":"result","id":42,"value":{"greeting":"hello x","n":[1,2.5e3,-0,true,null]}}'
seed result-bigint 3 '{"type":"result","id":7,"value":9007199254740993}'
seed result-escapes 6 '{"type":"result","id":1,"value":"h\u00e9llo \"q\" \\ \/ \n\t","x":{}}'
seed error 254 '{"type":"error","id":42,"message":"no such user","detail":"user 7 was deleted","retryable":false}'
seed error-null 9 '{"type":"error","id":42,"message":"boom","detail":null}'
seed sql 31 '{"type":"sql","seq":4,"query":"UPDATE account SET balance = balance + $1 WHERE id = $2 RETURNING balance","params":[10, "acc-1", null, {"a":[1]}, 12345678901234567890, -1.5E-3]}'
seed sql-refused 1 '{"type":"sql","seq":1,"query":" /* c */ -- x\n ( BEGIN","params":[]}' \
	'{"type":"sql","seq":2,"query":"copy t from stdin"}'
seed state 127 '{"type":"state.get","seq":1}' \
	'{"type":"state.set","seq":2,"value":{"cart":["a","b"],"total":3}}' \
	'{"type":"state.delete","seq":3}'
seed workflow 15 '{"type":"step","seq":1,"step":1,"name":"charge"}' \
	'{"type":"step.done","seq":2,"step":1,"output":{"ok":true},"error":null}' \
	'{"type":"send","seq":3,"to":5,"topic":"t","value":[ ]}' \
	'{"type":"sleep","seq":4,"ms":10}'
seed whitespace 2 $' {\t"type" :\r\n"result" , "id":1 , "value" : [ 1 , { } , [ ] ] }'
seed not-object 0 '[1,2,3]' '"type"' '{"type":3}' '{}'
seed dup-keys 4 '{"type":"result","id":1,"Value":1,"value":2,"value":3}'
# jsonb refuses these though cJSON takes them (fx_json_check)
seed strict-refused 7 '{"type":"result","id":1,"value":[01,-.5,1.,"a\u0000b"]}' \
	'{"type":"state.set","seq":1,"value":"\ud800"}' \
	'{"type":"sql","seq":2,"query":"SELECT $1","params":["'$'\x01''",1e131072]}' \
	'{"type":"result","id":2,"value":"'$'\xc3\x28''"}'
seed strict-numbers 11 '{"type":"result","id":3,"value":[1e131071,0.001e131074,1e-16383,0e99999,-0,1E+2]}' \
	'{"type":"result","id":4,"value":[10e131071,1e-16384,0e-16384,1.0e-16383,0e1073741823]}'
printf '\x00\x04\x00\x00\x01{' >"$P/too-big"
printf '\x05\x00\x00\x00\x1e{"type":"ready"' >"$P/partial"

# --- fuzz_http -----------------------------------------------------------

H=$here/corpus/fuzz_http
rm -rf "$H"
mkdir -p "$H"
# req NAME CHUNK TEXT: TEXT with \r\n line ends (printf %b), CHUNK as above.
req() {
	{
		byte "$2"
		printf '%b' "$3"
	} >"$H/$1"
}
req metrics 255 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'
req call 255 'POST /fn/hello?timeout=5&key=cart%2D1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"name":"you"}\n'
req async 7 'POST /fn/h%C3%A9llo?async=1 HTTP/1.1\r\nauthorization:   bearer   tok  \r\nContent-Length: 2\r\n\r\n{}'
req get 3 'GET /invocations/42 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n'
req no-token 255 'POST /fn/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n'
req bad-method 255 'DELETE /fn/x HTTP/1.1\r\n\r\nPUT /metrics HTTP/1.1\r\n\r\n'
req bad-query 255 'POST /fn/x?timeout=0&async=maybe&key=%ZZ HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 0\r\n\r\n'
req not-found 255 'GET / HTTP/1.1\r\n\r\nGET /fn/a/b HTTP/1.1\r\n\r\nGET /invocations/12x HTTP/1.1\r\n\r\n'
req pipelined 0 'GET /metrics HTTP/1.1\r\n\r\nPOST /fn/x HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\n{}\nGET /invocations/1 HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer t\r\n\r\n'
req chunked 15 'POST /fn/x HTTP/1.1\r\nAuthorization: Bearer t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
req continue 31 'POST /fn/x HTTP/1.1\r\nAuthorization: Bearer t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}'
req too-large 255 'POST /fn/x HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 999999999999\r\n\r\nxxxx'
req nul-body 255 'POST /fn/x HTTP/1.1\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\n{\0}'
req http10 255 'GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n'
req garbage 255 'GET /metrics HTTP/1.1\r\nHost x\r\n\r\n'
req upgrade 255 'GET /metrics HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
req absolute-url 255 'GET http://h:1/invocations/7?x=1 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\nCONNECT h:443 HTTP/1.1\r\n\r\n'
req dashboard 63 'GET / HTTP/1.1\r\n\r\nGET /dashboard.js HTTP/1.1\r\n\r\nGET /dashboard.css HTTP/1.1\r\nConnection: close\r\n\r\n'
req api 255 'GET /api/invocations?limit=5&fn=h%C3%A9llo HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n'
req api-bad 255 'GET /api/invocations?limit=500 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\nGET /api/throughput?seconds=5 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\nGET /api/nope HTTP/1.1\r\n\r\nPOST /api/functions HTTP/1.1\r\n\r\n'
req api-one 255 'GET /api/invocations/42 HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n'
{
	byte 255
	printf 'GET /metrics HTTP/1.1\r\nX-Long: '
	head -c 17000 /dev/zero | tr '\0' a
	printf '\r\n\r\n'
} >"$H/too-long-headers"

# --- fuzz_image ----------------------------------------------------------

# A layer: tar of the tree under $work/l (cleared), options as given.
cd "$work"
layer() {
	local out=$1
	shift
	(cd "$work/l" && tar --owner=0 --group=0 --mtime=@1700000000 -b1 "$@") >"$out"
}
fresh() { rm -rf "$work/l" && mkdir -p "$work/l"; }
# image NAME BYTE LAYER...: the seed, byte first, layers between separators.
image() {
	local name=$1 byte=$2 first=1
	shift 2
	{
		byte "$byte"
		for f in "$@"; do
			[ $first -eq 1 ] || printf -- '--fx-layer--'
			first=0
			cat "$f"
		done
	} >"$I/$name"
}

fresh
mkdir -p l/app l/usr/bin l/etc l/tmp l/opq l/gone
printf '#!/bin/sh\necho hello\n' >l/app/hello.sh
chmod 755 l/app/hello.sh
ln l/app/hello.sh l/app/hello-link
ln -s usr/bin l/bin
ln -s /usr/lib64 l/lib64
printf 'root:x:0:0::/:/bin/sh\napp:x:1234:2345::/app:/bin/sh\n' >l/etc/passwd
printf 'root:x:0:\nstaff:x:50:\n' >l/etc/group
echo old >l/opq/old
echo bye >l/gone/x
chmod 1777 l/tmp
layer base.tar -cf - --format=gnu .
fresh
mkdir -p l/opq l/etc
touch l/.wh.gone l/opq/.wh..wh..opq l/etc/.wh..wh.plnk l/.wh..
echo new >l/opq/new
echo v2 >l/app-file
layer upper.tar -cf - --format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime app-file opq etc .wh.gone .wh..
image good 1 base.tar upper.tar
image good-user 9 base.tar
image good-group 17 base.tar upper.tar

fresh
echo x >l/x
layer dotdot.tar -cPf - --transform='s,^x$,../../../canary/pwned,' x
layer absolute.tar -cPf - --transform='s,^x$,/tmp/fx-fuzz-image/canary/pwned,' x
layer abs-etc.tar -cPf - --transform='s,^x$,/etc/fx-fuzz-pwned,' x
image dotdot 1 dotdot.tar
image absolute 1 absolute.tar
image abs-etc 1 abs-etc.tar

fresh
ln -s ../../../canary l/esc
layer esc-link.tar -cf - esc
fresh
mkdir l/esc
echo pwned >l/esc/pwned
layer esc-file.tar -cf - esc/pwned
image symlink-2layers 1 esc-link.tar esc-file.tar
fresh
ln -s /tmp/fx-fuzz-image/canary l/esc
mkdir l/d
echo pwned >l/d/pwned
layer abs-link.tar -cf - --transform='s,^d/,esc/,' esc d/pwned
image symlink-abs 1 abs-link.tar
fresh
ln -s /etc l/etc
layer etc-link.tar -cf - etc
fresh
mkdir l/etc
echo 'root::0:0::/:/bin/sh' >l/etc/passwd
layer etc-passwd.tar -cf - etc/passwd
image symlink-etc 9 etc-link.tar etc-passwd.tar

fresh
echo x >l/x
ln l/x l/y
layer hl-abs.tar -cPf - --transform='s,^x$,/etc/passwd,hRS' x y
layer hl-dotdot.tar -cPf - --transform='s,^x$,../../../canary/keep,hRS' x y
image hardlink-abs 1 hl-abs.tar
image hardlink-dotdot 1 hl-dotdot.tar
fresh
ln -s ../../../canary l/c
echo x >l/x
ln l/x l/y
layer hl-via-link.tar -cPf - --transform='s,^x$,c/keep,hRS' x c y
image hardlink-via-link 1 hl-via-link.tar

fresh
echo r >l/regular
mkfifo l/fifo
if [ "$(id -u)" -eq 0 ] && mknod l/null c 1 3 2>/dev/null && mknod l/sda b 8 0 2>/dev/null; then
	layer devices.tar -cf - regular fifo null sda
else
	layer devices.tar -cf - regular fifo
fi
image devices 1 devices.tar

fresh
echo s >l/su
chmod 4755 l/su
mkdir l/sgdir
chmod 2775 l/sgdir
mkdir l/locked
echo in >l/locked/f
chmod 000 l/locked
layer setid.tar -cf - su sgdir locked/f locked
chmod 700 l/locked
image setid 1 setid.tar

fresh
truncate -s 4M l/sparse
printf 'data' | dd of=l/sparse bs=1 seek=4096 conv=notrunc status=none
truncate -s 16M l/sparse-big
printf 'data' | dd of=l/sparse-big bs=1 seek=4096 conv=notrunc status=none
truncate -s 5G l/huge
layer sparse.tar -cSf - sparse
layer sparse-big.tar -cSf - sparse-big
layer huge.tar -cSf - huge
image sparse 1 sparse.tar
image sparse-big 1 sparse-big.tar
image huge 1 huge.tar

fresh
head -c 64M /dev/zero >l/zeros
layer bomb.tar -cf - zeros
xz -9 -c bomb.tar >bomb.tar.xz
rm l/zeros
image bomb-xz 1 bomb.tar.xz
# Data that is never written, 256 MiB of it: a whiteout's; and a whole
# archive, xz'd, whose first member is zeros and whose manifest lists one
# layer 20 times (each read again from the start): FX_IMAGE_MAX_READ.
fresh
head -c 256M /dev/zero >l/.wh.zeros
layer wh-bomb.tar -cf - .wh.zeros
xz -9 -c wh-bomb.tar >wh-bomb.tar.xz
rm l/.wh.zeros wh-bomb.tar
image bomb-whiteout 1 wh-bomb.tar.xz
rm -rf outer
mkdir -p outer/l
head -c 256M /dev/zero >outer/filler
printf '{"config":{}}' >outer/c.json
printf '[{"Config":"c.json","Layers":[%s"l/layer.tar"]}]' "$(printf '"l/layer.tar",%.0s' $(seq 19))" >outer/manifest.json
cp base.tar outer/l/layer.tar
(cd outer && tar --owner=0 --group=0 --mtime=@1700000000 -b1 -cf - filler l c.json manifest.json) | xz -9 -c >outer.tar.xz
rm -rf outer
image bomb-outer 0 outer.tar.xz
fresh
mkdir l/many
for i in $(seq 1 2100); do : >"l/many/$i"; done
layer many.tar -cf - many
gzip -9 -n -c many.tar >many.tar.gz
image many 1 many.tar.gz
fresh
d=l
for i in $(seq 1 130); do d=$d/d; done
mkdir -p "$d"
layer deep.tar -cf - d
gzip -9 -n -c deep.tar >deep.tar.gz
image deep 1 deep.tar.gz

# Whole images: docker save (a layer reached through a link between
# members) and an OCI layout (gzip layer, nested index).
rm -rf docker oci
mkdir -p docker/aaa docker/bbb
cp base.tar docker/aaa/layer.tar
ln -s ../aaa/layer.tar docker/bbb/layer.tar
printf '{"config":{"Cmd":["/bin/sh"],"User":"app","Env":["A=1"],"WorkingDir":"/app"}}' >docker/config.json
printf '[{"Config":"config.json","Layers":["aaa/layer.tar","bbb/layer.tar"]}]' >docker/manifest.json
(cd docker && tar --owner=0 --group=0 --mtime=@1700000000 -b1 -cf - manifest.json config.json aaa bbb) >docker.tar
mkdir -p oci/blobs/sha256
gzip -9 -n -c upper.tar >oci/l.gz
sum() { sha256sum "$1" | cut -d' ' -f1; }
lsum=$(sum oci/l.gz)
mv oci/l.gz "oci/blobs/sha256/$lsum"
printf '{"config":{"Entrypoint":"/app/hello.sh","User":"1:2"}}' >oci/c
csum=$(sum oci/c)
mv oci/c "oci/blobs/sha256/$csum"
printf '{"schemaVersion":2,"config":{"digest":"sha256:%s"},"layers":[{"digest":"sha256:%s"}]}' "$csum" "$lsum" >oci/m
msum=$(sum oci/m)
mv oci/m "oci/blobs/sha256/$msum"
printf '{"schemaVersion":2,"manifests":[{"digest":"sha256:%s","platform":{"os":"linux","architecture":"amd64"}}]}' "$msum" >oci/ix
xsum=$(sum oci/ix)
mv oci/ix "oci/blobs/sha256/$xsum"
printf '{"schemaVersion":2,"manifests":[{"digest":"sha256:%s"}]}' "$xsum" >oci/index.json
(cd oci && tar --owner=0 --group=0 --mtime=@1700000000 -b1 -cf - index.json blobs) >oci.tar
image docker-save 0 docker.tar
image oci-layout 0 oci.tar

du -sh "$P" "$H" "$I"
