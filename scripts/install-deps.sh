#!/usr/bin/env bash
# Installs the Debian packages edmmd needs, once. Usage: install-deps.sh build|deb|test
#   build: what compiling edmmd needs (libsystemd-dev for the CSystemd module), the C libraries
#          (c/: a C compiler, make, binutils, pkg-config), and python3 for the man pages
#          `make install` makes (scripts/manpage.py).
#   deb:   also what `make deb` needs: dpkg-buildpackage, debhelper, lintian.
#   test:  all of the above, and what the test suite drives: a real systemd in a container
#          (systemd-container, debootstrap), promtool (prometheus), tmux (edmmctl top in a real
#          terminal), clang's runtime for the fuzzers, iproute2/procps/util-linux for process
#          checks, strace (the C library's one-sendmsg-one-recvmsg fast path).
set -euo pipefail
mode=${1:-build}
packages=(libsystemd-dev pkg-config python3 gcc make binutils libc6-dev)
if [ "$mode" = deb ] || [ "$mode" = test ]; then
  packages+=(dpkg-dev debhelper fakeroot lintian)
fi
if [ "$mode" = test ]; then
  packages+=(systemd-container debootstrap prometheus tmux procps util-linux curl strace)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
