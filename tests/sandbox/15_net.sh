#!/usr/bin/env bash
# 15_net.sh: a hostile function deployed with --net (outbound network
# through slirp4netns) still reaches nothing on the host itself: not the
# host's loopback (127.0.0.1 inside is the sandbox's own, 10.0.2.2 is
# disabled), not a service the host listens on at its own address, not the
# database's Unix socket, not a host abstract Unix socket.  The worker keeps
# serving.
source "$(dirname "$0")/../lib.sh"


fx_pg_start

tag=$$$RANDOM

if [ ! -x /usr/bin/slirp4netns ] && [ ! -x /usr/local/bin/slirp4netns ]; then
	ok "# SKIP slirp4netns is not installed (--net is unavailable)"
	exit 0
fi

fx_worker_start A
fx_deploy_ok
mkdir -p "$FX_TEST_DIR/fn/net"

# A host listener on every address (TCP) and an abstract Unix socket; each
# connection it accepts is a line in $listener.hits.
listener=$FX_TEST_DIR/listener
python3 - "$listener" "fx-net-$tag" <<'EOF' &
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
        c, peer = s.accept()
        with open(out + ".hits", "a") as f:
            f.write("%s %s\n" % ("tcp" if s is tcp else "unix", peer))
        c.close()
EOF
FX_PIDS+=($!)
wait_for "a host listener is up" 10 test -e "$listener.port"
port=$(cat "$listener.port")
host_ip=$(hostname -I 2>/dev/null | awk '{ print $1 }')
check "the host has a non-loopback address ($host_ip)" test -n "$host_ip" -a "$host_ip" != 127.0.0.1
check "the host reaches its listener at $host_ip:$port" python3 -c "import socket
socket.create_connection(('$host_ip', $port), 3)"
hits0=$(cat "$listener.hits" 2>/dev/null | wc -l)

cat >"$FX_TEST_DIR/fn/net/main.py" <<'EOF'
import errno, json, os, socket, sys

args = json.load(sys.stdin)
out = {}


def attempt(name, family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(addr)
        out[name] = "connected"
    except socket.timeout:
        out[name] = "timeout"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


attempt("loopback", socket.AF_INET, ("127.0.0.1", args["port"]))
attempt("slirp_host_loopback", socket.AF_INET, ("10.0.2.2", args["port"]))
attempt("host_address", socket.AF_INET, (args["host_ip"], args["port"]))
attempt("abstract_unix", socket.AF_UNIX, "\0" + args["abstract"])
out["pgsock_visible"] = os.path.lexists(args["pgsock"])
out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
print(json.dumps(out))
EOF
fx_deploy net "$FX_TEST_DIR/fn/net" --cmd "python3 main.py" --net --timeout 20s --retries 0
id=$(run net "{\"port\": $port, \"host_ip\": \"$host_ip\", \"abstract\": \"fx-net-$tag\",
	\"pgsock\": \"$FX_TEST_DIR/run/.s.PGSQL.5432\"}" 30)
check_eq "--net: the probe ran" succeeded "$(q "SELECT status FROM fx.invocation WHERE id = $id")"
echo "# --net probe: $(q "SELECT result FROM fx.invocation WHERE id = $id")"
check_eq "--net: it has a network (lo and tap0: the control)" '["lo", "tap0"]' \
	"$(q "SELECT result->'interfaces' FROM fx.invocation WHERE id = $id")"
check_eq "--net: 127.0.0.1 is the sandbox's own loopback (refused)" ECONNREFUSED "$(res "$id" loopback)"
r=$(res "$id" slirp_host_loopback)
check "--net: the host's loopback through slirp (10.0.2.2) is unreachable (got $r)" \
	test "$r" != connected
r=$(res "$id" host_address)
check "--net: a service the host listens on at its own address $host_ip is unreachable (got $r)" \
	test "$r" != connected
check_eq "--net: the host's abstract Unix socket is not there" ECONNREFUSED "$(res "$id" abstract_unix)"
check_eq "--net: the database's Unix socket is not visible" false "$(res "$id" pgsock_visible)"
hits=$(tail -n +$((hits0 + 1)) "$listener.hits" 2>/dev/null | tr '\n' ' ')
check_eq "--net: the host listener saw no connection from the function" "" "$hits"
serves "--net"

exit $FX_FAILED
