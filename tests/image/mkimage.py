#!/usr/bin/env python3
"""Build the image archives tests/image/run.sh feeds to fx_image, by hand.

usage: mkimage.py OUTDIR VICTIMDIR

No Docker, no network: layers are tars made here with tarfile, packed as
`docker save` output (uncompressed layers, one of them reached through a
symbolic link between members, as docker save links identical layers) or
as an OCI image layout (gzip layers, "./"-prefixed member names, optionally
behind a nested multi-platform index).  Hostile images point at VICTIMDIR,
a directory on the host that must come through untouched.
"""
import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile

OUT, VICTIM = sys.argv[1], sys.argv[2]


def F(name, data=b"", mode=0o644):
    ti = tarfile.TarInfo(name)
    data = data.encode() if isinstance(data, str) else data
    ti.size, ti.mode, ti.mtime = len(data), mode, 1700000000
    ti.uid, ti.gid, ti.uname, ti.gname = 4321, 4321, "someone", "someone"
    return ti, data


def D(name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 1700000000
    return ti, None


def L(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    return ti, None


def H(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, target, 0o644
    return ti, None


def DEV(name, kind, major=0, minor=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor, ti.mode = kind, major, minor, 0o666
    return ti, None


def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, mtime=0)


class Zeros(io.RawIOBase):
    """N bytes of zeros, read in pieces: never all in memory."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def gz_tar(entries, out):
    """A gzip'd tar written to the file OUT as it is made: entries are
    (TarInfo, file object or None)."""
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as z:
        with tarfile.open(fileobj=z, mode="w|", format=tarfile.PAX_FORMAT) as t:
            for ti, f in entries:
                t.addfile(ti, f)


def zeros_entry(name, n):
    ti = F(name)[0]
    ti.size = n
    return ti, Zeros(n)


def gz_bomb(path, zeros, times):
    """docker save output gzip'd as a whole, its first member ZEROS bytes
    of zeros, its manifest listing one small layer TIMES times: each layer
    is found by reading the archive again from its start."""
    tiny = layer([F("hello", "hi")])
    cfg = config("", 1)
    manifest = [{"Config": "c.json", "Layers": ["l/layer.tar"] * times}]
    members = [zeros_entry("filler", zeros)]
    for name, data in [("l/layer.tar", tiny), ("c.json", cfg),
                       ("manifest.json", json.dumps(manifest).encode())]:
        members.append((F(name, data)[0], io.BytesIO(data)))
    with open(path, "wb") as f:
        gz_tar(members, f)


def sparse_layer(size):
    """A layer whose one file is SIZE bytes of holes and a byte at its end,
    stored by GNU tar as a sparse member of a few KiB (tarfile reads sparse
    members but cannot write them)."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "holes"), "wb") as f:
            f.truncate(size - 1)
            f.seek(size - 1)
            f.write(b"x")
        return subprocess.run(["tar", "--sparse", "--format=pax", "-C", d, "-cf", "-", "holes"],
                              check=True, stdout=subprocess.PIPE).stdout


def config(user, n_layers):
    return json.dumps({
        "architecture": arch(), "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "/app/hello.sh"],
            "Cmd": ["--flag", "two words"],
            "Env": ["PATH=/usr/bin:/bin", "GREETING=fx"],
            "WorkingDir": "/app",
            "User": user,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64] * n_layers},
    }).encode()


def arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}.get(m, m)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def pack(path, members, prefix=""):
    """members: list of (name, bytes) or (name, ('symlink', target))."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        dirs = set()
        for name, data in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    t.addfile(D(prefix + d)[0])
            if isinstance(data, tuple):
                t.addfile(L(prefix + name, data[1])[0])
            else:
                t.addfile(F(prefix + name, data)[0], io.BytesIO(data))


def docker_save(path, layers, cfg, link_last=False):
    cfg_name = sha(cfg) + ".json"
    members, names = [(cfg_name, cfg)], []
    for i, data in enumerate(layers):
        d = sha(data)
        members += [(d + "/VERSION", b"1.0"), (d + "/layer.tar", data)]
        names.append(d + "/layer.tar")
    if link_last:
        alias = sha(b"alias")
        members.append((alias + "/layer.tar", ("symlink", "../" + names[-1])))
        names[-1] = alias + "/layer.tar"
    manifest = [{"Config": cfg_name, "RepoTags": ["fx/test:latest"], "Layers": names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    pack(path, members)


def oci_layout(path, layers, cfg, nested=False, compress=True):
    blobs = {}

    def blob(data, media):
        blobs[sha(data)] = data
        return {"mediaType": media, "digest": "sha256:" + sha(data), "size": len(data)}

    kind = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(cfg, "application/vnd.oci.image.config.v1+json"),
        "layers": [blob(gz(l) if compress else l, kind) for l in layers],
    }
    desc = blob(json.dumps(manifest).encode(), manifest["mediaType"])
    if nested:
        other = "arm64" if arch() != "arm64" else "amd64"
        bogus = {"mediaType": desc["mediaType"], "digest": "sha256:" + "f" * 64, "size": 1,
                 "platform": {"architecture": other, "os": "linux"}}
        desc = dict(desc, platform={"architecture": arch(), "os": "linux"})
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [bogus, desc]}
        desc = blob(json.dumps(index).encode(), index["mediaType"])
    top = {"schemaVersion": 2, "manifests": [desc]}
    members = [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
               ("index.json", json.dumps(top).encode())]
    members += [("blobs/sha256/" + h, d) for h, d in sorted(blobs.items())]
    pack(path, members, prefix="./")


def base_layer():
    """Layer 1: /bin/sh and its libraries in a merged-/usr layout, and
    files for layer 2 to delete, replace and hide."""
    out = subprocess.run(["ldd", "/bin/sh"], capture_output=True, text=True).stdout
    libs = re.findall(r"(?:=>\s*|^\s*)(/\S+)", out, re.M)
    files = {}

    def usr(p):
        p = p.lstrip("/")
        top = p.split("/")[0]
        return "usr/" + p if top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32") else p

    with open("/bin/sh", "rb") as f:
        files["usr/bin/sh"] = (f.read(), 0o755)
    for lib in libs:
        with open(lib, "rb") as f:
            files[usr(lib)] = (f.read(), 0o755)
    entries = [D("usr"), D("usr/bin")]  # other parents are left implicit
    entries += [F(n, d, m) for n, (d, m) in sorted(files.items())]
    entries += [L("bin", "usr/bin"), L("lib", "usr/lib"), L("lib64", "/usr/lib64"),
                L("sbin", "/usr/sbin")]
    entries += [
        D("etc"),
        F("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\n"),
        F("etc/group", "root:x:0:\napp:x:2345:\nstaff:x:50:app\n"),
        F("etc/removeme", "bye"),
        D("app"),
        F("app/hello.sh", '#!/bin/sh\necho "hello from $GREETING in $(pwd)"\n', 0o755),
        H("app/hello-link", "app/hello.sh"),
        F("app/shared", "v1"),
        H("app/shared-link", "app/shared"),
        D("olddir"), F("olddir/a", "a"), D("olddir/sub"), F("olddir/sub/b", "b"),
        D("opq"), F("opq/lower1", "1"), D("opq/sub"), F("opq/sub/lower2", "2"),
        F("replaced", "layer1"),
        D("dir2file"), F("dir2file/x", "x"),
        D("keepdir"), F("keepdir/keep", "keep"),
        D("tmp", 0o1777),
    ]
    return layer(entries)


def upper_layer():
    """Layer 2: whiteouts, an opaque directory, replacements."""
    return layer([
        D("opq"), F("opq/new", "new"),  # before the marker: kept
        F("opq/.wh..wh..opq"),
        F("opq/after", "after"),  # after the marker: kept
        D("etc"), F("etc/.wh.removeme"),
        F(".wh.olddir"),
        F(".wh.never-existed"),
        F("replaced", "layer2"),
        F("dir2file", "now a file"),
        D("app"), F("app/shared", "v2"),
        F("newfile", "added by layer 2"),
    ])


def hostile(name, layers, fmt="docker"):
    path = os.path.join(OUT, name + ".tar")
    if fmt == "docker":
        docker_save(path, layers, config("", len(layers)))
    else:
        oci_layout(path, layers, config("", len(layers)))


def main():
    os.makedirs(OUT, exist_ok=True)
    base, upper = base_layer(), upper_layer()
    docker_save(os.path.join(OUT, "good-docker.tar"), [base, upper], config("1000:1000", 2),
                link_last=True)
    oci_layout(os.path.join(OUT, "good-oci.tar"), [base, upper], config("app", 2))
    oci_layout(os.path.join(OUT, "good-oci-nested.tar"), [base, upper],
               config("app:staff", 2), nested=True)
    oci_layout(os.path.join(OUT, "good-oci-plain.tar"), [base, upper], config("1234", 2),
               compress=False)
    # /etc/passwd an absolute link inside the image: resolved in the image.
    docker_save(os.path.join(OUT, "passwd-link.tar"),
                [layer([D("etc"), D("data"), F("data/passwd", "svc:x:777:778::/:/bin/sh\n"),
                        L("etc/passwd", "/../data/passwd")])],
                json.dumps({"config": {"User": "svc"}}).encode())
    docker_save(os.path.join(OUT, "nouser.tar"), [layer([D("etc"), F("etc/passwd", "")])],
                json.dumps({"config": {"User": "ghost"}}).encode())

    hostile("dotdot", [layer([F("../../etc/fx-image-dotdot", "x")])])
    hostile("absolute", [layer([F("/etc/fx-image-absolute", "x")])])
    hostile("symlink-victim", [layer([L("evil", VICTIM), F("evil/planted", "x")])])
    hostile("symlink-etc", [layer([L("evil", "/etc"), F("evil/passwd", "owned\n")])])
    hostile("symlink-2layers", [layer([L("evil", VICTIM)]), layer([F("evil/planted", "x")])])
    hostile("whiteout-through-link", [layer([L("evil", VICTIM)]),
                                      layer([F("evil/.wh.keep"), F("evil/.wh..wh..opq")])])
    hostile("whiteout-dots", [layer([D("a"), F("a/keepme", "k")]),
                              layer([F("a/.wh.."), F("a/.wh..."), F(".wh..")])])
    hostile("hardlink-absolute", [layer([H("x", "/etc/shadow")])])
    hostile("hardlink-dotdot", [layer([H("x", "../../../../../../etc/shadow")])])
    hostile("hardlink-via-link", [layer([L("evil", VICTIM), H("x", "evil/keep")])])
    hostile("hardlink-to-link", [layer([L("evil", VICTIM + "/keep"), H("x", "evil")])])
    # A directory (with a pending mode fixup) replaced by a link to the host.
    hostile("dir-then-link", [layer([D("d", 0o700), D("d/sub", 0o700), L("d", VICTIM)])])
    hostile("devices", [layer([D("dev"), DEV("dev/null", tarfile.CHRTYPE, 1, 3),
                               DEV("dev/sda", tarfile.BLKTYPE, 8, 0),
                               DEV("fifo", tarfile.FIFOTYPE), F("regular", "r")])])
    hostile("setid", [layer([F("su", "#!/bin/sh\n", 0o4755), F("sg", "x", 0o2755),
                             D("sgdir", 0o2775), F("sgdir/f", "f")])])
    # 64 MiB of zeros, about 64 KiB compressed; run.sh caps at 1 MiB.
    hostile("bomb", [layer([F("zeros", bytes(64 << 20))])], fmt="oci")
    # A header declaring 5 GiB and no data: over the default 4 GiB cap.
    huge = tarfile.TarInfo("huge")
    huge.size = 5 << 30
    hostile("huge", [huge.tobuf(format=tarfile.USTAR_FORMAT) + bytes(1024)], fmt="oci")
    hostile("sparse", [sparse_layer(6 << 30)], fmt="oci")
    hostile("many", [layer([F("f%d" % i, "x") for i in range(20)])])
    # Compression bombs: 1 GiB of zeros in a 1 MB archive, read 22 times
    # (manifest, config, 20 layers); a layer of 1 GiB of zeros as one file
    # and as a whiteout's data (never written); 200 layers.
    gz_bomb(os.path.join(OUT, "gzbomb.tar"), 1 << 30, 20)
    for name, entry in [("layer-bomb", "zeros"), ("whiteout-bomb", ".wh.zeros")]:
        buf = io.BytesIO()
        gz_tar([zeros_entry(entry, 1 << 30)], buf)
        oci_layout(os.path.join(OUT, name + ".tar"), [buf.getvalue()], config("", 1),
                   compress=False)
    hostile("many-layers", [layer([F("f", "x")])] * 200)
    hostile("deep", [layer([F("/".join(["d"] * 200) + "/f", "x")])])
    pack(os.path.join(OUT, "oci-missing-blob.tar"),
         [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
          ("index.json", json.dumps({"schemaVersion": 2, "manifests": [
              {"digest": "sha256:" + "e" * 64, "size": 1}]}).encode())])
    pack(os.path.join(OUT, "empty.tar"), [("README", b"no image here")])
    with open(os.path.join(OUT, "garbage.tar"), "wb") as f:
        f.write(b"this is not an image\n" * 100)
    pack(os.path.join(OUT, "missing-layer.tar"),
         [("cfg.json", b"{}"),
          ("manifest.json", json.dumps([{"Config": "cfg.json", "Layers": ["nope/layer.tar"]}]).encode())])


main()
