#!/usr/bin/env bash
# scripts/deps.sh: install the Debian 12 packages fx needs to build, run and
# test, if any is missing.  Needs root (or sudo) the first time only.
set -euo pipefail

packages=(
	build-essential pkg-config
	postgresql-15 postgresql-client-15 postgresql-server-dev-15 libpq-dev
	libuv1-dev libcjson-dev libarchive-dev libseccomp-dev libhttp-parser-dev
	clang python3 valgrind procps slirp4netns iproute2 util-linux curl
	chromium
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
