#!/usr/bin/env bash
# 20_image.sh: "bring your own container" — a function deployed from a
# `docker save` tarball and from an OCI layout runs in its own root file
# system, with the image config's entrypoint, cmd, env, working directory
# and user honoured, and nothing of the host's /usr visible.
source "$(dirname "$0")/../lib.sh"
fx_pg_start
fx_worker_start A

img=$FX_TEST_DIR/img
mkdir -p "$img"
# An image holding /bin/sh and its libraries, and a script that reports
# what it sees as JSON (sh builtins only: the image has no other program).
python3 - "$img" <<'PY'
import io, json, os, subprocess, sys, tarfile, hashlib, gzip
out = sys.argv[1]
def add(t, name, data=None, mode=0o755, link=None, dir=False):
    ti = tarfile.TarInfo(name); ti.mtime = 1700000000; ti.mode = mode
    if dir: ti.type = tarfile.DIRTYPE; t.addfile(ti); return
    if link: ti.type = tarfile.SYMTYPE; ti.linkname = link; t.addfile(ti); return
    ti.size = len(data); t.addfile(ti, io.BytesIO(data))
libs = [l.split("=>")[-1].split()[0] for l in subprocess.check_output(["ldd", "/bin/sh"], text=True).splitlines() if "/" in l]
script = r'''#!/bin/sh
uid=; while read k v rest; do [ "$k" = "Uid:" ] && uid=$v; done < /proc/self/status
usr=absent; [ -e /usr/share ] && usr=present
echo "{\"greeting\":\"$GREETING\",\"pwd\":\"$(pwd)\",\"args\":\"$*\",\"uid\":\"$uid\",\"usr_share\":\"$usr\",\"home\":\"$HOME\"}"
'''.encode()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    for d in ("usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64", "app", "etc"):
        add(t, d, dir=True)
    add(t, "bin", link="usr/bin"); add(t, "lib", link="usr/lib"); add(t, "lib64", link="usr/lib64")
    add(t, "usr/bin/sh", open(os.path.realpath("/bin/sh"), "rb").read())
    for l in libs:
        add(t, "usr" + l if not l.startswith("/usr") else l[1:], open(os.path.realpath(l), "rb").read())
    add(t, "app/report.sh", script)
    add(t, "etc/passwd", b"root:x:0:0::/root:/bin/sh\napp:x:2000:2000::/home/app:/bin/sh\n", 0o644)
    add(t, "etc/group", b"root:x:0:\napp:x:2000:\n", 0o644)
layer = buf.getvalue()
cfg = {"architecture": "amd64", "os": "linux", "config": {
    "Entrypoint": ["/bin/sh", "/app/report.sh"], "Cmd": ["one", "two"],
    "Env": ["PATH=/usr/bin:/bin", "GREETING=from-image"], "WorkingDir": "/app", "User": "app"}}
cfgb = json.dumps(cfg).encode()
def pack(path, members):
    with tarfile.open(path, "w") as t:
        for name, data in members:
            add(t, name, data, 0o644)
pack(os.path.join(out, "docker.tar"), [("config.json", cfgb), ("l1/layer.tar", layer),
     ("manifest.json", json.dumps([{"Config": "config.json", "Layers": ["l1/layer.tar"]}]).encode())])
gl = gzip.compress(layer, mtime=0)
def blob(b): return "sha256:" + hashlib.sha256(b).hexdigest(), b
ld, _ = blob(gl); cd, _ = blob(cfgb)
man = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfgb)},
                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(gl)}]}).encode()
md, _ = blob(man)
idx = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man)}]}).encode()
pack(os.path.join(out, "oci.tar"), [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", idx),
     ("blobs/sha256/" + ld[7:], gl), ("blobs/sha256/" + cd[7:], cfgb), ("blobs/sha256/" + md[7:], man)])
PY
check "test images built" test -s "$img/docker.tar" -a -s "$img/oci.tar"

for kind in docker oci; do
	check "$kind: fx deploy --image" "$FX_BIN" deploy "img-$kind" --image "$img/$kind.tar"
	out=$("$FX_BIN" invoke "img-$kind" '{}' 2>&1)
	check_eq "$kind: entrypoint, cmd, env and working directory honoured" \
		'from-image|/app|one two' "$(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["greeting"], d["pwd"], d["args"], sep="|")' 2>&1)"
	check_eq "$kind: runs as the image's user (app = 2000)" 2000 \
		"$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["uid"].split()[0])' 2>&1)"
	check_eq "$kind: the host's /usr is not there" absent \
		"$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usr_share"])' 2>&1)"
done
check_eq "the image's rootfs was unpacked once per image" 2 "$(ls -d "$FX_TEST_DIR"/cache/images/*/rootfs | wc -l)"
check "--cmd replaces the image's command" "$FX_BIN" deploy img-cmd --image "$img/docker.tar" --cmd "/bin/sh -c true"
check_eq "... and its result is null" null "$("$FX_BIN" invoke img-cmd '{}' 2>&1)"
out=$("$FX_BIN" deploy img-bad --image "$img/nope.tar" 2>&1)
check "a missing image file is a clear CLI error" grep -q 'cannot read' <<<"$out"
printf 'not a tar' >"$img/garbage.tar"
out=$("$FX_BIN" deploy img-garbage --image "$img/garbage.tar" 2>&1)
check "a file that is no archive is refused at deploy" grep -q 'invalid bundle' <<<"$out"
check_eq "the worker still serves" from-image \
	"$("$FX_BIN" invoke img-docker '{}' 2>&1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["greeting"])' 2>&1)"
