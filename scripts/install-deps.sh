#!/usr/bin/env bash
# Installs the Debian packages edmmd needs, once. Usage: install-deps.sh build|deb|test|kselftest
#   build: what compiling edmmd needs (libsystemd-dev for the CSystemd module), the C libraries
#          (c/: a C compiler, make, binutils, pkg-config), and python3 for the man pages
#          `make install` makes (scripts/manpage.py).
#   deb:   also what `make deb` needs: dpkg-buildpackage, debhelper, lintian.
#   test:  all of the above, and what the test suite drives: a real systemd in a container
#          (systemd-container, debootstrap), promtool (prometheus), tmux (edmmctl top in a real
#          terminal), clang's runtime for the fuzzers, iproute2/procps/util-linux for process
#          checks, strace (the C library's one-sendmsg-one-recvmsg fast path), python3-yaml
#          (the rules and dashboard checker), containerd, runc, busybox-static and python3-venv
#          (the kubernetes stage; its CRI client comes from PyPI), and what kselftest needs. The
#          interpose stage needs nothing beyond build: gcc brings libasan and libubsan, and python3
#          reads edmmctl's JSON.
#   kselftest: the kernel's SGX selftests (scripts/test-kselftest-sgx.sh): the kernel tree of
#          linux-source-6.12 (bookworm-security; linux-source-6.1 where 6.12 is not offered)
#          and libssl-dev (their sigstruct.c signs the test enclave with libcrypto).
set -euo pipefail
mode=${1:-build}
packages=(libsystemd-dev pkg-config python3 gcc make binutils libc6-dev)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
kernel_source=no
if [ "$mode" = deb ] || [ "$mode" = test ]; then
  packages+=(dpkg-dev debhelper fakeroot lintian)
fi
if [ "$mode" = test ]; then
  packages+=(systemd-container debootstrap prometheus tmux procps util-linux python3-yaml curl strace libssl-dev xz-utils
    containerd runc busybox-static python3-venv file)
  kernel_source=yes
elif [ "$mode" = kselftest ]; then
  packages+=(libssl-dev xz-utils)
  kernel_source=yes
fi
# Either kernel tree will do; which one the sources offer is known only after apt-get update.
if installed linux-source-6.12 || installed linux-source-6.1; then kernel_source=no; fi
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ $kernel_source = no ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ $kernel_source = yes ]; then
  if apt-cache show linux-source-6.12 >/dev/null 2>&1; then missing+=(linux-source-6.12); else missing+=(linux-source-6.1); fi
fi
echo "installing: ${missing[*]}"
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
