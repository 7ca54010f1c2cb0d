#!/usr/bin/env bash
# 10_hostile.sh: hostile functions against the sandbox.  The file system:
# host files invisible, read-only /, /usr and /fn, a capped /tmp that does
# not outlive the invocation.  The network: no database socket, no TCP or
# UDP anywhere, no host abstract socket.  System calls: EPERM from the
# seccomp filter, foreign-architecture calls kill.  Privileges: uid 1000, no
# capabilities, no_new_privs, seccomp mode 2, setuid binaries give nothing,
# no descriptor or environment leaks.  Processes: the host's and other
# sandboxes' are invisible and out of reach, fork bombs stop at the pids
# limit, nothing outlives a timeout or a finished function.  Memory: a bomb
# dies "out of memory", /tmp counts against the limit.  Metering: max_rss_kb,
# cpu_ms, wall_ms, the CPU limit.  The worker itself: floods on stdout and
# stderr, a session process that lies in the protocol.
#
# Every attack checks two things: the attack failed (from what the function
# reports, its stderr or its invocation's status and error), and the worker
# still serves a normal call right after.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

tag=$$$RANDOM

# redeploy NAME OPTIONS: a new version of NAME with its latest bundle and
# command and these options (those fx deploy has no flag for).
redeploy() {
	q "SELECT fx_deploy('$1',
	        (SELECT bundle FROM fx.version WHERE fn = '$1' ORDER BY version DESC LIMIT 1),
	        (SELECT command FROM fx.version WHERE fn = '$1' ORDER BY version DESC LIMIT 1),
	        '$2')" >/dev/null
}

# logs ID: its log lines, through the CLI.
logs() { "$FX_BIN" logs "$1" 2>&1; }

# expect_ok WHAT ID: the probe itself ran to the end (so its report counts).
expect_ok() {
	local s
	s=$(col "$2" "status || coalesce(' ' || error, '')")
	if [ "$s" = succeeded ]; then ok "$1: the probe ran and reported"
	else not_ok "$1: the probe ran and reported (status '$s'; logs: $(logs "$2" | tail -n 5 | tr '\n' '|'))"; fi
}

fx_worker_start A
fx_deploy_ok
check_eq "a normal function works" '{"ok": true}' "$(q "SELECT fx_call('ok', '{}', '10s')")"

# --- reading host files: nothing outside the sandbox's root is there
echo "canary $tag" >"/tmp/fx-canary.$tag"
echo "canary $tag" >"$FX_TEST_DIR/canary"
host_paths=(/etc/shadow /etc/sudoers /etc/ssh /root /home /var /var/lib/postgresql /boot /sys
	/srv /opt /work "$FX_ROOT" "$FX_TEST_DIR" "$FX_TEST_DIR/canary" "$FX_TEST_DIR/cache"
	"$FX_TEST_DIR/stage" "$FX_TEST_DIR/data" "$FX_TEST_DIR/data/global/pg_control"
	"$FX_TEST_DIR/run" "/tmp/fx-canary.$tag" /proc/1/root/etc/shadow /fn/../etc/shadow)
present=()
for p in "${host_paths[@]}"; do [ -e "$p" ] && present+=("$p"); done
echo "# present on the host: ${present[*]}"
paths_json=$(printf '"%s",' "${host_paths[@]}")
dir=$(mkfn fs-read main.py <<'EOF'
import json, os, sys

args = json.load(sys.stdin)
visible, readable = [], []
for p in args["paths"]:
    if os.path.lexists(p):
        visible.append(p)
    try:
        with open(p, "rb") as f:
            f.read(1)
        readable.append(p)
    except OSError:
        pass
# The mount table names the bundle's host directory: that path must not
# lead anywhere either.
host_bundle = ""
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split()
        if fields[4] == "/fn":
            host_bundle = fields[3]
with open("/etc/passwd") as f:
    users = sorted(l.split(":")[0] for l in f if ":" in l)
print(json.dumps({
    "visible": visible, "readable": readable,
    "host_bundle": host_bundle,
    "host_bundle_visible": bool(host_bundle) and os.path.lexists(host_bundle),
    "users": users,
    "root": sorted(os.listdir("/")),
    "proc1": os.path.lexists("/proc/1"),
}))
EOF
)
fx_deploy fs-read "$dir" --cmd "python3 main.py" --timeout 10s --retries 0
id=$(run fs-read "{\"paths\": [${paths_json%,}]}")
expect_ok "host files" "$id"
check_eq "host files: none of the ${#host_paths[@]} host paths is visible (${#present[@]} exist on the host)" \
	"[]" "$(q "SELECT result->'visible' FROM fx.invocation WHERE id = $id")"
check_eq "host files: none readable" "[]" "$(q "SELECT result->'readable' FROM fx.invocation WHERE id = $id")"
check_eq "host files: the root holds only the sandbox's own directories" \
	'["bin", "dev", "etc", "fn", "lib", "lib64", "proc", "sbin", "tmp", "usr"]' \
	"$(q "SELECT result->'root' FROM fx.invocation WHERE id = $id")"
check_eq "host files: /etc/passwd is the sandbox's (fx, nobody, root), not the host's" \
	'["fx", "nobody", "root"]' "$(q "SELECT result->'users' FROM fx.invocation WHERE id = $id")"
hb=$(res "$id" host_bundle)
echo "# note: /proc/self/mountinfo inside names the bundle's host path: $hb"
check_eq "host files: the bundle's host path (from mountinfo) does not resolve inside" false \
	"$(res "$id" host_bundle_visible)"
check_eq "host files: /proc/1 (the reaper) is hidden" false "$(res "$id" proc1)"
rm -f "/tmp/fx-canary.$tag"
serves "host files"

# --- writing to /, /usr, /fn, /etc (read-only), /proc and /proc/sys (not ours); /tmp works
dir=$(mkfn fs-write main <<EOF
#!/bin/sh
written=""
for f in /pwn.$tag /usr/pwn.$tag /usr/bin/pwn.$tag /usr/lib/pwn.$tag /fn/pwn.$tag /etc/pwn.$tag /proc/pwn.$tag; do
	if echo pwned >"\$f"; then written="\$written \$f"; fi
done
for f in /fn/main /etc/passwd /etc/hosts /proc/sys/kernel/hostname /proc/sys/vm/drop_caches \
	/proc/sysrq-trigger /proc/self/uid_map; do
	if echo 1 >>"\$f"; then written="\$written \$f"; fi
done
mkdir /usr/pwn-dir.$tag && written="\$written /usr/pwn-dir.$tag"
ln -s /tmp /fn/pwn-link.$tag && written="\$written /fn/pwn-link.$tag"
if echo ok >/tmp/pwn.$tag && [ "\$(cat /tmp/pwn.$tag)" = ok ]; then tmp=yes; else tmp=no; fi
echo "{\"written\": \"\${written# }\", \"tmp\": \"\$tmp\"}"
EOF
)
fx_deploy fs-write "$dir" --timeout 10s --retries 0
id=$(run fs-write)
expect_ok "read-only" "$id"
check_eq "read-only: nothing written to /, /usr, /fn, /etc, /proc, /proc/sys" "" "$(res "$id" written)"
check_eq "read-only: /tmp is writable (the control)" yes "$(res "$id" tmp)"
n=$(logs "$id" | grep -c "Read-only file system")
check "read-only: stderr says 'Read-only file system' ($n lines, >= 6 for /, /usr, /fn, /etc)" test "$n" -ge 6
leaked=$(find "$FX_TEST_DIR" /usr/pwn.$tag /usr/bin/pwn.$tag /usr/lib/pwn.$tag /tmp/pwn.$tag \
	-name "pwn*.$tag" 2>/dev/null)
check_eq "read-only: no pwn.$tag file on the host (test dir, cache, /usr, /tmp)" "" "$leaked"
serves "read-only"

# --- fill /tmp past its cap (tmp_mb 8): ENOSPC, and the host's /tmp is untouched
dir=$(mkfn tmp-fill main <<EOF
#!/bin/sh
dd if=/dev/zero of=/tmp/fill.$tag bs=1M count=64 >&2
rc=\$?
size=\$(stat -c %s /tmp/fill.$tag)
total=\$(stat -f -c '%b %S' /tmp | { read -r b s; echo \$((b * s / 1024)); })
echo "{\"rc\": \$rc, \"size\": \$size, \"total_kb\": \$total}"
EOF
)
fx_deploy tmp-fill "$dir" --timeout 10s --retries 0
redeploy tmp-fill '{"tmp_mb": 8, "retries": 0, "timeout_ms": 10000}'
check_eq "tmp cap: the new version has tmp_mb 8" 8 \
	"$(q "SELECT options->>'tmp_mb' FROM fx.version WHERE fn = 'tmp-fill' ORDER BY version DESC LIMIT 1")"
host_avail0=$(df -k --output=avail /tmp | tail -1)
id=$(run tmp-fill)
expect_ok "tmp cap" "$id"
check "tmp cap: dd failed (rc $(res "$id" rc))" test "$(res "$id" rc)" != 0
if logs "$id" | grep -q "No space left on device"; then ok "tmp cap: dd's stderr says 'No space left on device'"
else not_ok "tmp cap: dd's stderr says 'No space left on device' (got: $(logs "$id" | tr '\n' '|'))"; fi
size=$(res "$id" size)
check "tmp cap: the file stopped at the cap ($size bytes <= 8 MiB)" test "${size:-999999999}" -le 8388608
check_eq "tmp cap: /tmp inside is an 8 MB file system" 8192 "$(res "$id" total_kb)"
check "tmp cap: no /tmp/fill.$tag on the host" test ! -e "/tmp/fill.$tag"
host_avail1=$(df -k --output=avail /tmp | tail -1)
echo "# host /tmp available: $host_avail0 KB before, $host_avail1 KB after"
dir=$(mkfn tmp-peek main <<'EOF'
#!/bin/sh
echo "{\"tmp\": \"$(ls -A /tmp | tr '\n' ' ')\"}"
EOF
)
fx_deploy tmp-peek "$dir" --timeout 10s --retries 0
id2=$(run tmp-peek)
check_eq "tmp cap: the next sandbox starts with an empty /tmp (nothing carried over)" "" "$(res "$id2" tmp)"
serves "tmp cap"

# --- the network: the database's socket, loopback, the host, the internet
listener_out=$FX_TEST_DIR/listener
python3 - "$listener_out" "fx-hostile-$tag" <<'EOF' &
import os, select, socket, sys
out, name = sys.argv[1], sys.argv[2]
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 0))
tcp.listen(16)
unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
unix.bind("\0" + name)
unix.listen(16)
with open(out + ".port.tmp", "w") as f:
    f.write(str(tcp.getsockname()[1]))
os.rename(out + ".port.tmp", out + ".port")
while True:
    for s in select.select([tcp, unix], [], [])[0]:
        c, _ = s.accept()
        with open(out + ".hits", "a") as f:
            f.write(("tcp" if s is tcp else "unix") + "\n")
        c.close()
EOF
FX_PIDS+=($!)
wait_for "network: a host listener (TCP on all addresses, abstract Unix socket) is up" 10 \
	test -e "$listener_out.port"
port=$(cat "$listener_out.port")
host_ip=$(hostname -I 2>/dev/null | awk '{ print $1 }')
host_ip=${host_ip:-127.0.0.1}
connect_ok() {
	python3 -c "import socket, sys
s = socket.socket(socket.$1); s.settimeout(3); s.connect($2)" 2>/dev/null
}
check "network: the host reaches the listener on 127.0.0.1:$port" connect_ok "AF_INET" "('127.0.0.1', $port)"
check "network: the host reaches the listener on $host_ip:$port" connect_ok "AF_INET" "('$host_ip', $port)"
check "network: the host reaches the abstract socket @fx-hostile-$tag" connect_ok "AF_UNIX" "'\\0fx-hostile-$tag'"
check "network: the host sees the database socket" test -S "$FX_TEST_DIR/run/.s.PGSQL.5432"
hits0=$(cat "$listener_out.hits" 2>/dev/null | wc -l)

dir=$(mkfn net main.py <<'EOF'
import errno, json, os, socket, sys

args = json.load(sys.stdin)
out = {}


def attempt(name, family, kind, addr):
    try:
        s = socket.socket(family, kind)
    except OSError as e:
        out[name] = "socket: " + errno.errorcode.get(e.errno, str(e.errno))
        return
    s.settimeout(3)
    try:
        if kind == socket.SOCK_DGRAM:
            s.sendto(b"x", addr)
            out[name] = "sent"
        else:
            s.connect(addr)
            out[name] = "connected"
    except socket.timeout:
        out[name] = "timeout"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


sock = args["pgsock"]
out["pgsock_visible"] = os.path.lexists(sock)
attempt("pg_unix", socket.AF_UNIX, socket.SOCK_STREAM, sock)
attempt("pg_tcp", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 5432))
attempt("listener_loopback", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", args["port"]))
attempt("listener_host_ip", socket.AF_INET, socket.SOCK_STREAM, (args["host_ip"], args["port"]))
attempt("listener_ipv6", socket.AF_INET6, socket.SOCK_STREAM, ("::1", args["port"]))
attempt("abstract_unix", socket.AF_UNIX, socket.SOCK_STREAM, "\0" + args["abstract"])
attempt("internet_tcp", socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 443))
attempt("internet_udp", socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53))
try:
    socket.getaddrinfo("example.com", 80)
    out["dns"] = "resolved"
except OSError as e:
    out["dns"] = type(e).__name__
out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
print(json.dumps(out))
EOF
)
fx_deploy net "$dir" --cmd "python3 main.py" --timeout 20s --retries 0
id=$(run net "{\"pgsock\": \"$FX_TEST_DIR/run/.s.PGSQL.5432\", \"port\": $port,
	\"host_ip\": \"$host_ip\", \"abstract\": \"fx-hostile-$tag\"}" 30)
expect_ok "network" "$id"
echo "# network probe: $(col "$id" result)"
check_eq "network: the database's Unix socket is not even visible" false "$(res "$id" pgsock_visible)"
check_eq "network: connecting to it fails with ENOENT" ENOENT "$(res "$id" pg_unix)"
check_eq "network: 127.0.0.1:5432 is unreachable" ENETUNREACH "$(res "$id" pg_tcp)"
check_eq "network: the host listener on 127.0.0.1 is unreachable" ENETUNREACH "$(res "$id" listener_loopback)"
check_eq "network: the host listener on $host_ip is unreachable" ENETUNREACH "$(res "$id" listener_host_ip)"
v6=$(res "$id" listener_ipv6)
check "network: the host listener on [::1] is unreachable (got $v6)" \
	test "$v6" = ENETUNREACH -o "$v6" = EADDRNOTAVAIL -o "$v6" = "socket: EAFNOSUPPORT"
check_eq "network: the host's abstract Unix socket is not there (own network namespace)" ECONNREFUSED \
	"$(res "$id" abstract_unix)"
check_eq "network: TCP to the internet is unreachable" ENETUNREACH "$(res "$id" internet_tcp)"
check_eq "network: UDP to the internet is unreachable" ENETUNREACH "$(res "$id" internet_udp)"
check "network: no DNS ($(res "$id" dns))" test "$(res "$id" dns)" != resolved
check_eq "network: the only interface is lo" '["lo"]' "$(q "SELECT result->'interfaces' FROM fx.invocation WHERE id = $id")"
check_eq "network: the listener saw no connection from the function" "$hits0" \
	"$(cat "$listener_out.hits" 2>/dev/null | wc -l)"
serves "network"

# --- forbidden system calls: errno as the function sees it
dir=$(mkfn syscalls main.py <<'EOF'
import ctypes, errno, json, os, sys, time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}


def call(name, fn, *args):
    ctypes.set_errno(0)
    r = fn(*args)
    e = ctypes.get_errno()
    out[name] = errno.errorcode.get(e, str(e)) if r == -1 else "returned %d" % r
    print(name, out[name], file=sys.stderr, flush=True)
    return r


CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
call("ptrace(TRACEME)", libc.ptrace, 0, 0, None, None)
child = os.fork()
if child == 0:
    time.sleep(10)
    os._exit(0)
call("ptrace(ATTACH)", libc.ptrace, 16, child, None, None)
call("ptrace(SEIZE)", libc.ptrace, 0x4206, child, None, None)
call("process_vm_readv", libc.syscall, 310, child, None, 0, None, 0, 0)
os.kill(child, 9)
os.waitpid(child, 0)
call("mount(tmpfs)", libc.mount, b"none", b"/tmp", b"tmpfs", 0, None)
call("mount(bind /)", libc.mount, b"/", b"/tmp", None, 4096, None)
call("mount(remount / rw)", libc.mount, None, b"/", None, 32, None)
call("umount2(/fn)", libc.umount2, b"/fn", 2)
call("unshare(CLONE_NEWUSER)", libc.unshare, CLONE_NEWUSER)
call("unshare(CLONE_NEWNS)", libc.unshare, CLONE_NEWNS)
call("unshare(CLONE_NEWNET)", libc.unshare, CLONE_NEWNET)
r = call("clone(CLONE_NEWUSER)", libc.syscall, 56, CLONE_NEWUSER | 17, None, None, None, None)
if r == 0:
    os._exit(0)
r = call("clone(CLONE_NEWPID)", libc.syscall, 56, CLONE_NEWPID | 17, None, None, None, None)
if r == 0:
    os._exit(0)
call("clone3", libc.syscall, 435, None, 0)
call("setns", libc.syscall, 308, 0, 0)
call("chroot", libc.chroot, b"/tmp")
call("pivot_root", libc.syscall, 155, b"/tmp", b"/tmp")
call("bpf(PROG_LOAD)", libc.syscall, 321, 5, None, 0)
call("bpf(MAP_CREATE)", libc.syscall, 321, 0, None, 0)
call("keyctl(GET_KEYRING_ID)", libc.syscall, 250, 0, -3, 0)
call("add_key", libc.syscall, 248, b"user", b"fx", b"x", 1, -3)
call("request_key", libc.syscall, 249, b"user", b"fx", None, -3)
call("open_by_handle_at", libc.syscall, 304, -100, None, 0)
call("name_to_handle_at", libc.syscall, 303, -100, b"/", None, None, 0)
call("perf_event_open", libc.syscall, 298, None, 0, -1, -1, 0)
call("init_module", libc.syscall, 175, None, 0, b"")
call("finit_module", libc.syscall, 313, 0, b"", 0)
call("kexec_load", libc.syscall, 246, 0, 0, None, 0)
call("reboot", libc.syscall, 169, 0xfee1dead, 672274793, 0x4321fedc, None)
call("settimeofday", libc.syscall, 164, None, None)
call("userfaultfd", libc.syscall, 323, 0)
call("fsopen", libc.syscall, 430, b"tmpfs", 0)
call("open_tree", libc.syscall, 428, -100, b"/", 1)
call("syslog", libc.syscall, 103, 3, None, 0)
call("swapon", libc.syscall, 167, b"/tmp/swap", 0)
call("setuid(0)", libc.setuid, 0)
call("setgid(0)", libc.setgid, 0)
print(json.dumps(out))
EOF
)
fx_deploy syscalls "$dir" --cmd "python3 main.py" --timeout 20s --retries 0
id=$(run syscalls)
expect_ok "system calls" "$id"
while IFS='|' read -r name got; do
	[ -n "$name" ] || continue
	case $name in
	clone3) want=ENOSYS ;;
	*) want=EPERM ;;
	esac
	check_eq "system calls: $name fails with $want" "$want" "$got"
done < <(q "SELECT e.k, e.v FROM fx.invocation, jsonb_each_text(result) e(k, v) WHERE id = $id")
check "system calls: all 37 were tried" test "$(q "SELECT count(*) FROM fx.invocation, jsonb_object_keys(result) WHERE id = $id")" = 37
serves "system calls"

# --- system calls of another architecture (i386 int 0x80, x32) are killed
if command -v cc >/dev/null 2>&1 && [ "$(uname -m)" = x86_64 ]; then
	mkdir -p "$FX_TEST_DIR/fn/arch"
	cat >"$FX_TEST_DIR/fn/arch/arch.c" <<'EOF'
/* unshare(CLONE_NEWUSER) through another ABI: i386 (int 0x80) or x32. */
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	long		rc;

	if (argc > 1 && strcmp(argv[1], "i386") == 0)
	{
		long		nr = 310;	/* unshare on i386 */

		__asm__ volatile ("int $0x80" : "=a"(rc) : "a"(nr), "b"(0x10000000L) : "memory");
	}
	else
		rc = syscall(0x40000000L | SYS_unshare, 0x10000000L);	/* x32 */
	printf("{\"rc\": %ld}\n", rc);
	return 0;
}
EOF
	if cc -O -o "$FX_TEST_DIR/fn/arch/arch" "$FX_TEST_DIR/fn/arch/arch.c" 2>"$FX_TEST_DIR/cc.log"; then
		rm "$FX_TEST_DIR/fn/arch/arch.c"
		for abi in i386 x32; do
			fx_deploy "arch-$abi" "$FX_TEST_DIR/fn/arch" --cmd "./arch $abi" --timeout 10s --retries 0
			id=$(run "arch-$abi")
			s=$(col "$id" "status || ' ' || coalesce(error, '') || ' ' || coalesce(result::text, '')")
			if [[ $s == "failed killed by signal 31 (Bad system call)"* ]]; then
				ok "foreign ABI: $abi unshare(CLONE_NEWUSER) kills the function (SIGSYS)"
			else
				not_ok "foreign ABI: $abi unshare(CLONE_NEWUSER) kills the function (SIGSYS) (got '$s')"
			fi
			serves "foreign ABI $abi"
		done
	else
		not_ok "foreign ABI: cc arch.c ($(head -3 "$FX_TEST_DIR/cc.log"))"
	fi
else
	ok "foreign ABI: # SKIP no cc or not x86_64"
fi

# --- privileges: uid 1000, no capabilities, no_new_privs, seccomp; setuid
# binaries (a setuid copy of id in the bundle, su and passwd from the host's
# /usr) give nothing
mkdir -p "$FX_TEST_DIR/fn/privs"
cp /usr/bin/id "$FX_TEST_DIR/fn/privs/id-suid"
chmod 4755 "$FX_TEST_DIR/fn/privs/id-suid"
dir=$(mkfn privs main <<'EOF'
#!/bin/sh
# (no awk: /usr/bin/awk is a link through the host's /etc/alternatives)
st() { grep "^$1:" /proc/self/status | cut -f2; }
caps="$(st CapInh) $(st CapPrm) $(st CapEff) $(st CapBnd) $(st CapAmb)"
suid_mode=$(stat -c %A /fn/id-suid)
suid_u=$(/fn/id-suid -u)
suid_all=$(/fn/id-suid)
su -c 'id -u' root </dev/null >/tmp/su.out 2>&1
su_rc=$?
passwd -d root </dev/null >/tmp/passwd.out 2>&1
passwd_rc=$?
cat /tmp/su.out /tmp/passwd.out >&2
su_root=no
grep -qx 0 /tmp/su.out && su_root=yes
printf '{"uid": "%s", "euid": "%s", "gid": "%s", "groups": "%s", "caps": "%s", "nnp": "%s",' \
	"$(id -ru)" "$(id -u)" "$(id -g)" "$(id -G)" "$caps" "$(st NoNewPrivs)"
printf '"seccomp": "%s", "suid_mode": "%s", "suid_u": "%s", "suid_all": "%s",' \
	"$(st Seccomp)" "$suid_mode" "$suid_u" "$suid_all"
printf '"su_rc": %d, "su_root": "%s", "passwd_rc": %d, "uid_map": "%s", "pid": %d,' \
	"$su_rc" "$su_root" "$passwd_rc" "$(tr -s ' ' <"/proc/self/uid_map" | sed 's/^ //')" "$$"
# field 41 of stat: the scheduling policy (3: SCHED_BATCH), inherited by cut
printf '"policy": "%s"}\n' "$(cut -d' ' -f41 /proc/self/stat)"
EOF
)
fx_deploy privs "$dir" --timeout 10s --retries 0
id=$(run privs)
expect_ok "privileges" "$id"
echo "# privileges: $(col "$id" result)"
check_eq "privileges: uid, euid and gid are 1000" "1000|1000|1000" \
	"$(res "$id" uid)|$(res "$id" euid)|$(res "$id" gid)"
check_eq "privileges: supplementary groups: only 1000" 1000 "$(res "$id" groups)"
z=0000000000000000
check_eq "privileges: CapInh/CapPrm/CapEff/CapBnd/CapAmb all zero" "$z $z $z $z $z" "$(res "$id" caps)"
check_eq "privileges: NoNewPrivs 1" 1 "$(res "$id" nnp)"
check_eq "privileges: Seccomp 2 (filter)" 2 "$(res "$id" seccomp)"
echo "# the setuid copy of id is $(res "$id" suid_mode) inside (deployed as -rwsr-xr-x)"
check_eq "privileges: the setuid copy of id in the bundle still says 1000" 1000 "$(res "$id" suid_u)"
suid_all=$(res "$id" suid_all)
check "privileges: ... and no euid=0 ($suid_all)" test -n "$suid_all" -a "${suid_all#*euid=0}" = "$suid_all"
check "privileges: su (setuid root on the host) fails (exit $(res "$id" su_rc))" test "$(res "$id" su_rc)" != 0
check_eq "privileges: su never runs a command as uid 0" no "$(res "$id" su_root)"
check "privileges: passwd -d root (setuid root on the host) fails (exit $(res "$id" passwd_rc))" \
	test "$(res "$id" passwd_rc)" != 0
check_eq "privileges: the function is PID 2 (under the sandbox's reaper)" 2 "$(res "$id" pid)"
check_eq "privileges: the function runs under SCHED_BATCH (policy 3)" 3 "$(res "$id" policy)"
serves "privileges"

# --- no descriptors and no environment leak in from the worker
dir=$(mkfn leaks main.py <<'EOF'
import json, os, sys

fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append("%d:%s" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
args = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items()
       if k in args["names"] or any(s in v for s in args["values"])}
print(json.dumps({"fds": fds, "env": env, "std": [os.readlink("/proc/self/fd/%d" % i) for i in range(3)]}))
EOF
)
fx_deploy leaks "$dir" --cmd "python3 main.py" --timeout 10s --retries 0
id=$(run leaks "{\"names\": [\"PGHOST\", \"PGUSER\", \"PGDATABASE\", \"PGPORT\", \"FX_DB\", \"FX_TEST_DIR\", \"SUDO_USER\"],
	\"values\": [\"$FX_TEST_DIR\", \"$FX_ROOT\", \"/root\"]}")
expect_ok "leaks" "$id"
check_eq "leaks: no descriptor beyond 0, 1, 2 (no database connection, no worker pipes)" "[]" \
	"$(q "SELECT result->'fds' FROM fx.invocation WHERE id = $id")"
check_eq "leaks: no PG*/FX_DB variable and no host path in the environment" "{}" \
	"$(q "SELECT result->'env' FROM fx.invocation WHERE id = $id")"
serves "leaks"

# --- host processes: invisible, and cannot be signalled
no_proc() { ! pgrep -f "$1" >/dev/null; }
pg_pid=$(head -1 "$FX_TEST_DIR/data/postmaster.pid")
dir=$(mkfn killer main <<EOF
#!/bin/sh
set -- \$(tr -dc '0-9 ')
sleep 60.$tag &
child=\$!
pids=\$(cd /proc && echo [0-9]*)
cmds=\$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0\n"\\\\' '    ')
kill -9 1; init=\$?
kill -9 "\$1"; worker=\$?
kill -9 "\$2"; postmaster=\$?
kill -9 -1; all=\$?
sleep 0.3
kill -0 \$child 2>/dev/null && own_child=alive || own_child=killed
printf '{"pids": "%s", "cmds": "%s", "init": %d, "worker": %d, "postmaster": %d, "all": %d, "own_child": "%s"}\n' \
	"\$pids" "\$cmds" \$init \$worker \$postmaster \$all \$own_child
EOF
)
fx_deploy killer "$dir" --timeout 10s --retries 0
dir=$(mkfn victim main <<EOF
#!/bin/sh
sleep 3.$tag
echo '{"survived": true}'
EOF
)
fx_deploy victim "$dir" --timeout 10s --retries 0
victim=$(q "SELECT fx_invoke('victim')")
wait_for "processes: another sandbox (victim) is running" 5 pgrep -f "sleep 3\.$tag"
id=$(run killer "\"$FX_WORKER_A $pg_pid\"")
expect_ok "processes" "$id"
echo "# processes: $(col "$id" result)"
pids=$(res "$id" pids)
check "processes: /proc lists only the function's own few processes ($pids)" \
	test "$(wc -w <<<"$pids")" -ge 2 -a "$(wc -w <<<"$pids")" -le 5
cmds=$(res "$id" cmds)
if grep -q "postgres\|fx worker\|sleep 3\.$tag" <<<"$cmds"; then
	not_ok "processes: no host or other sandbox's command line is visible (saw '$cmds')"
else ok "processes: no host or other sandbox's command line is visible"; fi
check "processes: kill -9 1 (the sandbox's reaper) fails" test "$(res "$id" init)" != 0
check "processes: kill -9 of the worker's host pid $FX_WORKER_A fails" test "$(res "$id" worker)" != 0
check "processes: kill -9 of the postmaster's host pid $pg_pid fails" test "$(res "$id" postmaster)" != 0
if logs "$id" | grep -q "No such process"; then ok "processes: stderr says 'No such process' for the host pids"
else not_ok "processes: stderr says 'No such process' for the host pids (got: $(logs "$id" | tr '\n' '|'))"; fi
check_eq "processes: kill -9 -1 did reach the function's own child (the control)" killed "$(res "$id" own_child)"
check "processes: the postmaster is alive" kill -0 "$pg_pid"
wait_for "processes: the victim sandbox finishes untouched" 10 finished "$victim"
check_eq "processes: the victim succeeded" 'succeeded|{"survived": true}' \
	"$(q "SELECT status, result FROM fx.invocation WHERE id = $victim")"
serves "processes"

# --- two sandboxes at once: neither sees the other
dir=$(mkfn peek main <<EOF
#!/bin/sh
n=\$(tr -dc 0-9)
other=\$((3 - n))
sleep 30.$tag\$n &
sleep 1.5
seen=no
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -q "30\.$tag\$other" && seen=yes
mine=no
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -q "30\.$tag\$n" && mine=yes
echo "{\"n\": \$n, \"sees_own\": \"\$mine\", \"sees_other\": \"\$seen\", \"pids\": \"\$(cd /proc && echo [0-9]*)\"}"
EOF
)
fx_deploy peek "$dir" --timeout 10s --retries 0
p1=$(q "SELECT fx_invoke('peek', '1')")
p2=$(q "SELECT fx_invoke('peek', '2')")
both() { pgrep -f "sleep 30.${tag}1" && pgrep -f "sleep 30.${tag}2"; }
wait_for "concurrent: both sandboxes run at the same time" 5 both
wait_for "concurrent: both finish" 10 finished "$p1"
wait_for "concurrent: ... both" 10 finished "$p2"
for p in "$p1" "$p2"; do
	check_eq "concurrent: invocation $p sees its own child, not the other's" "succeeded|yes|no" \
		"$(q "SELECT status, result->>'sees_own', result->>'sees_other' FROM fx.invocation WHERE id = $p")"
done
echo "# their pids: '$(res "$p1" pids)' and '$(res "$p2" pids)'"
wait_for "concurrent: their background sleeps died with them" 3 no_proc "sleep 30.$tag"
serves "concurrent"

# --- fork bombs, with pids 32 and a 5 s timeout.  The classic shell one
# ends when its own shell cannot fork; a python one that survives failed
# forks holds the limit until the timeout.
host_procs() { ls -d /proc/[0-9]* 2>/dev/null | wc -l; }
# watch ID PATTERN: sample for up to 4 s while ID runs; sets max (processes
# matching PATTERN) and hmax (all processes on the host).
watch() {
	local n h end=$((SECONDS + 4))
	max=0
	hmax=0
	while [ $SECONDS -lt $end ] && ! finished "$1"; do
		n=$(pgrep -fc "$2")
		h=$(host_procs)
		[ "$n" -gt "$max" ] && max=$n
		[ "$h" -gt "$hmax" ] && hmax=$h
		sleep 0.02
	done
}
dir=$(mkfn bomb main <<'EOF'
#!/bin/sh
b() { b | b & }
while :; do b; done
EOF
)
fx_deploy bomb "$dir" --cmd "sh ./main bomb.$tag" --timeout 5s --retries 0
redeploy bomb '{"pids": 32, "retries": 0, "timeout_ms": 5000}'
base=$(host_procs)
id=$(q "SELECT fx_invoke('bomb')")
watch "$id" "bomb\.$tag"
check "shell fork bomb: never more than 32 of its processes on the host (max seen $max)" test "$max" -le 32
check "shell fork bomb: host process count stayed bounded ($base before, max $hmax)" test "$hmax" -le $((base + 200))
wait_for "shell fork bomb: the invocation ends" 10 finished "$id"
s=$(col "$id" "status || ' ' || coalesce(error, '')")
check "shell fork bomb: it ended failed ($s)" test "${s#failed}" != "$s"
wait_for "shell fork bomb: none of its processes is left on the host" 3 no_proc "bomb\.$tag"
if logs "$id" | grep -q "Cannot fork"; then ok "shell fork bomb: its stderr says 'Cannot fork'"
else not_ok "shell fork bomb: its stderr says 'Cannot fork' (got: $(logs "$id" | tail -3 | tr '\n' '|'))"; fi
serves "shell fork bomb"

dir=$(mkfn pybomb main.py <<'EOF'
import os, sys, time

failed = 0
while True:
    try:
        os.fork()  # parent and child both go on forking
    except OSError as e:
        failed += 1
        if failed == 1:
            print("pybomb: fork failed: %s" % e, file=sys.stderr, flush=True)
        time.sleep(0.01)
EOF
)
fx_deploy pybomb "$dir" --cmd "python3 main.py pybomb.$tag" --memory 256 --timeout 5s --retries 0
redeploy pybomb '{"pids": 32, "memory_mb": 256, "retries": 0, "timeout_ms": 5000}'
base=$(host_procs)
id=$(q "SELECT fx_invoke('pybomb')")
watch "$id" "pybomb\.$tag"
check "python fork bomb: it reached the limit (max seen $max >= 20)" test "$max" -ge 20
check "python fork bomb: never more than 32 of its processes on the host (max seen $max)" test "$max" -le 32
check "python fork bomb: host process count stayed bounded ($base before, max $hmax)" test "$hmax" -le $((base + 200))
wait_for "python fork bomb: the invocation ends" 10 finished "$id"
s=$(col "$id" "status || ' ' || coalesce(error, '')")
check "python fork bomb: it ended failed, timed out ($s)" test "${s#failed timed out}" != "$s"
wait_for "python fork bomb: none of its processes is left on the host" 3 no_proc "pybomb\.$tag"
if logs "$id" | grep -q "fork failed: .*Resource temporarily unavailable"; then
	ok "python fork bomb: its stderr says fork failed with EAGAIN"
else not_ok "python fork bomb: its stderr says fork failed with EAGAIN (got: $(logs "$id" | tail -3 | tr '\n' '|'))"; fi
serves "python fork bomb"

# --- children outliving the timeout: the whole PID namespace is killed
dir=$(mkfn sleeper main <<EOF
#!/bin/sh
sleep 300.$tag &
setsid sleep 301.$tag &
(sleep 302.$tag &)
sh -c 'trap "" TERM HUP INT; exec sleep 303.$tag' &
nohup sleep 304.$tag >/dev/null 2>&1 &
echo "sleeper: started" >&2
sleep 305.$tag
EOF
)
fx_deploy sleeper "$dir" --timeout 1s --retries 0
id=$(q "SELECT fx_invoke('sleeper')")
six() { [ "$(pgrep -fc "sleep 30[0-5]\.$tag")" = 6 ]; }
wait_for "timeout: all 6 sleeps (plain, setsid, double fork, ignoring TERM, nohup) run" 5 six
wait_for "timeout: the invocation ends" 6 finished "$id"
s=$(col "$id" "status || ' ' || coalesce(error, '')")
check "timeout: failed, 'timed out' ($s)" test "${s#failed timed out}" != "$s"
wait_for "timeout: no sleep is left on the host" 3 no_proc "sleep 30[0-5]\.$tag"
no_proc "sleep 30[0-5]\.$tag" || echo "# left: $(pgrep -af "sleep 30[0-5]\.$tag")"
serves "timeout"

# --- a function that succeeds but leaves daemons behind: they die with it
dir=$(mkfn daemon main <<EOF
#!/bin/sh
setsid sleep 310.$tag >/dev/null 2>&1 </dev/null &
(sleep 311.$tag >/dev/null 2>&1 </dev/null &)
echo '{"left": "behind"}'
EOF
)
fx_deploy daemon "$dir" --timeout 10s --retries 0
id=$(run daemon)
check_eq "daemons: the function succeeded" succeeded "$(col "$id" status)"
wait_for "daemons: its detached children are gone" 3 no_proc "sleep 31[01]\.$tag"
serves "daemons"

# --- memory bomb: 1 GB with --memory 64 is killed, "out of memory"
dir=$(mkfn membomb main.py <<'EOF'
import sys
print("membomb: allocating 1 GB", file=sys.stderr, flush=True)
x = b"x" * (1 << 30)
print('{"allocated": %d}' % len(x))
EOF
)
fx_deploy membomb "$dir" --cmd "python3 main.py" --memory 64 --timeout 10s --retries 0
id=$(run membomb)
s=$(col "$id" "status || ' ' || coalesce(error, '')")
check "memory bomb: failed with 'out of memory' ($s)" test "${s#failed out of memory}" != "$s"
rss=$(col "$id" max_rss_kb)
check "memory bomb: peak memory stayed within 64 MB (max_rss_kb $rss)" test "${rss:-0}" -gt 0 -a "${rss:-999999}" -le 65536
serves "memory bomb"

# --- /tmp as a memory bomb: tmp_mb 1024 but memory_mb 32, tmpfs pages count
dir=$(mkfn tmpbomb main <<EOF
#!/bin/sh
dd if=/dev/zero of=/tmp/big.$tag bs=1M count=256 >&2
echo "{\"rc\": \$?, \"size\": \$(stat -c %s /tmp/big.$tag)}"
EOF
)
fx_deploy tmpbomb "$dir" --memory 32 --timeout 10s --retries 0
redeploy tmpbomb '{"tmp_mb": 1024, "memory_mb": 32, "retries": 0, "timeout_ms": 10000}'
id=$(run tmpbomb)
echo "# tmpfs bomb: $(col "$id" "status || ' ' || coalesce(error, '') || ' ' || coalesce(result::text, '')")"
rss=$(col "$id" max_rss_kb)
check "tmpfs bomb: it ended (not running)" finished "$id"
check "tmpfs bomb: /tmp pages are charged to the sandbox: peak within 32 MB (max_rss_kb $rss)" \
	test "${rss:-0}" -gt 0 -a "${rss:-999999}" -le 32768
check_eq "tmpfs bomb: it did not write 256 MB" f \
	"$(q "SELECT coalesce((result->>'size')::bigint >= 268435456, false) FROM fx.invocation WHERE id = $id")"
serves "tmpfs bomb"

# --- metering: memory, CPU, wall clock
dir=$(mkfn rss40 main.py <<'EOF'
b = b"x" * (40 << 20)
print('{"mb": %d}' % (len(b) >> 20))
EOF
)
fx_deploy rss40 "$dir" --cmd "python3 main.py" --memory 128 --timeout 10s --retries 0
id=$(run rss40)
check_eq "metering: the 40 MB function succeeded" 'succeeded|{"mb": 40}' "$(col "$id" "status || '|' || result")"
rss=$(col "$id" max_rss_kb)
check "metering: max_rss_kb >= 40000 ($rss)" test "${rss:-0}" -ge 40000
dir=$(mkfn busy main.py <<'EOF'
import json, sys, time
# Busy for "secs" of wall clock, or for "cpu_secs" of its own CPU time.
args = json.load(sys.stdin)
clock = time.process_time if "cpu_secs" in args else time.monotonic
secs = args.get("cpu_secs", args.get("secs"))
t = clock()
n = 0
while clock() - t < secs:
    n += 1
print(json.dumps({"loops": n}))
EOF
)
fx_deploy busy "$dir" --cmd "python3 main.py" --timeout 10s --retries 0
id=$(run busy '{"cpu_secs": 0.5}')
check_eq "metering: the busy function succeeded" succeeded "$(col "$id" status)"
cpu=$(col "$id" "round(cpu_ms)")
wall=$(col "$id" "round(wall_ms)")
check "metering: cpu_ms of a busy loop using 0.5 s of CPU >= 300 ($cpu)" test "${cpu:-0}" -ge 300
check "metering: wall_ms present and >= 500 ($wall)" test "${wall:-0}" -ge 500
# the CPU limit: cpu 0.2, 1.5 s busy: about 300 ms of CPU
redeploy busy '{"cpu": 0.2, "retries": 0, "timeout_ms": 10000}'
id=$(run busy '{"secs": 1.5}')
cpu=$(col "$id" "round(cpu_ms)")
wall=$(col "$id" "round(wall_ms)")
check "cpu limit: cpu 0.2 for 1.5 s of busy loop uses <= 700 ms of CPU ($cpu ms, wall $wall ms)" \
	test "${cpu:-9999}" -le 700 -a "${wall:-0}" -ge 1500
serves "metering"

# --- attacks on the worker itself through what it reads from the sandbox:
# floods on stdout and stderr, and a session process that lies in the
# protocol (a 4 GiB frame, a frame that is not JSON, a result for an
# invocation it was not given)
dir=$(mkfn flood main <<'EOF'
#!/bin/sh
head -c 50000000 /dev/zero | tr '\0' e >&2
seq 1 200000 >&2
head -c 200000000 /dev/zero | tr '\0' o
EOF
)
fx_deploy flood "$dir" --timeout 20s --retries 0
id=$(run flood '{}' 30)
s=$(col "$id" "status || ' ' || coalesce(error, '')")
check "output flood: 200 MB on stdout fails the attempt ($s)" test "${s#failed bad output: result larger than}" != "$s"
check_eq "output flood: its log ends with one '[log truncated]'" "1|[log truncated]" \
	"$(q "SELECT count(*) FILTER (WHERE line = '[log truncated]') FROM fx_logs($id)")|$(q "SELECT line FROM fx_logs($id)" | tail -n 1 | cut -c1-40)"
kb=$(q "SELECT sum(length(line)) / 1024 FROM fx_logs($id)")
check "output flood: the log kept is bounded (${kb} KB <= 80 KB of 50 MB)" test "${kb:-999}" -le 80
peak=$(hwm)
if ! checked_memory; then
	ok "output flood: the worker's peak RSS stayed small # SKIP under a memory checker (${peak} kB)"
else
	check "output flood: the worker's peak RSS stayed small (${peak} kB < 100 MB)" test "${peak:-999999}" -lt 102400
fi
serves "output flood"

cat >"$FX_TEST_DIR/fn/liar.py" <<'EOF'
# A session process that lies: MODE is huge, garbage or forge.
import json, os, struct, sys

fd = int(os.environ["FX_SOCKET_FD"])
mode = sys.argv[1]


def send(data):
    os.write(fd, struct.pack(">I", len(data)) + data)


def recv():
    (n,) = struct.unpack(">I", os.read(fd, 4))
    data = b""
    while len(data) < n:
        data += os.read(fd, n - len(data))
    return json.loads(data)


send(b'{"type":"ready","protocol":1}')
msg = recv()
print("liar: got %s for invocation %s" % (msg["type"], msg.get("id")), file=sys.stderr, flush=True)
if mode == "huge":
    os.write(fd, b"\xff\xff\xff\xff" + b"x" * 65536)
elif mode == "garbage":
    send(b"this is not JSON")
else:
    target = msg["args"]["target"]
    send(b'{"type":"result","id":%d,"value":"forged by the liar"}' % target)
os.read(fd, 1)
EOF
mkdir -p "$FX_TEST_DIR/fn/liar"
mv "$FX_TEST_DIR/fn/liar.py" "$FX_TEST_DIR/fn/liar/main.py"
declare -A liar_err=([huge]="message larger than 64 MiB" [garbage]="not a JSON object"
	[forge]="a result for an invocation it was not given")
victim=$(q "SELECT fx_invoke('victim')")
wait_for "protocol: a victim invocation is running" 5 pgrep -f "sleep 3\.$tag"
for mode in huge garbage forge; do
	fx_deploy "liar-$mode" "$FX_TEST_DIR/fn/liar" --cmd "python3 main.py $mode" --mode session \
		--timeout 10s --retries 0
	id=$(run "liar-$mode" "{\"target\": $victim}")
	s=$(col "$id" "status || ' ' || coalesce(error, '')")
	if [[ $s == failed* && $s == *"${liar_err[$mode]}"* ]]; then
		ok "protocol: a $mode frame ends the session: '$s'"
	else
		not_ok "protocol: a $mode frame ends the session with '${liar_err[$mode]}' (got '$s')"
	fi
	serves "protocol $mode"
done
wait_for "protocol: the victim finishes" 10 finished "$victim"
check_eq "protocol: the victim's result is its own, not the forged one" 'succeeded|{"survived": true}' \
	"$(q "SELECT status, result FROM fx.invocation WHERE id = $victim")"

exit $FX_FAILED
