#!/usr/bin/env bash
# The packages test (issue #18): builds the Debian packages (`make deb`, lintian included), then,
# under a real systemd booted in a systemd-nspawn container that has no Swift toolchain (the tree
# of scripts/test-systemd.sh), does what an operator does: `apt install ./*.deb` offline, use
# edmmd through its socket, upgrade to a newer package while an enclave host is attached, reload
# a broken configuration, stop, purge.
#
# The newer package is the same build repacked with a higher version (dpkg-deb), not a second
# release build: what an upgrade exercises is dpkg replacing /usr/sbin/edmmd with a new file and
# the maintainer scripts restarting edmmd.service onto it, and the test checks exactly that (a
# new process running the new file, the old one gone, the socket untouched). `edmmd --version`
# still says the version it was built with.
#
# Usage: scripts/test-packages.sh          (root, or sudo without a password)
#   EDMMD_DEBS      a folder with edmmd_*.deb and edmm-sim_*.deb already built: skips `make deb`
#   EDMMD_PACKAGES_TEST_DIR   work directory (default .build/packages-test)
#   EDMMD_CONTAINER_TREE      the Debian tree (default .build/systemd-test/rootfs, shared with
#                   scripts/test-systemd.sh), made once and reused
# The last line is "N passed, N failed"; "skipped" only where nspawn cannot run at all.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
W=${EDMMD_PACKAGES_TEST_DIR:-$REPO/.build/packages-test}
STAGE=$W/stage.$$
. scripts/lib/container.sh
container_require_root "$@"
mkdir -p "$W"

"$REPO/scripts/install-deps.sh" test || abort "installing debhelper, lintian, systemd-container and debootstrap"
VERSION=$(cat VERSION)
ARCH=$(dpkg --print-architecture)
DEBS=${EDMMD_DEBS:-}
if [ -z "$DEBS" ]; then
  log "make deb (log: $W/deb.log)"
  make deb > "$W/deb.log" 2>&1 || { tail -30 "$W/deb.log"; abort "make deb (log: $W/deb.log)"; }
  DEBS=$REPO/.build/deb
  lintian_tags=$(grep -cE '^[WE]: ' "$W/deb.log")
  check "make deb builds edmmd and edmm-sim $VERSION; lintian: no errors ($lintian_tags warnings)" \
    test -f "$DEBS/edmmd_${VERSION}_$ARCH.deb" -a -f "$DEBS/edmm-sim_${VERSION}_$ARCH.deb"
  grep -E '^[WE]: ' "$W/deb.log" | sed 's/^/      /'
  log "packages built"

  # make install and make uninstall into a staging tree (the release build is there now).
  T=$W/install-tree
  rm -rf "$T"
  make install DESTDIR="$T" PREFIX=/usr/local > "$W/install.log" 2>&1
  count=$(find "$T" -type f | wc -l)
  check "make install DESTDIR=... PREFIX=/usr/local: $count files, the manifest lists them all" \
    test "$(grep -c '^[fc] ' "$T/usr/local/share/edmmd/install-manifest")" = "$count"
  check "  edmmd in sbin, stripped; the unit starts it there" sh -c "test -x '$T/usr/local/sbin/edmmd' && \
    ! readelf -S '$T/usr/local/sbin/edmmd' | grep -q debug_info && grep -qx 'ExecStart=/usr/local/sbin/edmmd --config /etc/edmmd/edmmd.toml' '$T/usr/local/lib/systemd/system/edmmd.service'"
  echo "# the operator's" >> "$T/etc/edmmd/edmmd.toml"
  make install DESTDIR="$T" PREFIX=/usr/local >> "$W/install.log" 2>&1
  check "  a second make install keeps the changed configuration" grep -q "the operator's" "$T/etc/edmmd/edmmd.toml"
  make uninstall DESTDIR="$T" PREFIX=/usr/local >> "$W/install.log" 2>&1
  check "  make uninstall removes everything else it installed" \
    test "$(cd "$T" && find . -mindepth 1 | sort | tr '\n' ' ')" = "./etc ./etc/edmmd ./etc/edmmd/edmmd.toml "
  rm -rf "$T"
fi
check "the package's version is VERSION's ($VERSION)" \
  test "$(dpkg-deb -f "$DEBS/edmmd_${VERSION}_$ARCH.deb" Version)" = "$VERSION"

# --- The newer version: the same packages, repacked as $VERSION+repack1.
NEXT=$VERSION+repack1
mkdir -p "$STAGE/debs" "$STAGE/upgrade" "$STAGE/repack"
cp "$DEBS/edmmd_${VERSION}_$ARCH.deb" "$DEBS/edmm-sim_${VERSION}_$ARCH.deb" "$STAGE/debs/"
for library in libedmm0 libedmm-sim0 libedmm-dev; do cp "$DEBS/${library}_${VERSION}_$ARCH.deb" "$STAGE/debs/"; done
for package in edmmd edmm-sim; do
  tree=$STAGE/repack/$package
  dpkg-deb -R "$DEBS/${package}_${VERSION}_$ARCH.deb" "$tree"
  sed -i "s/^Version: .*/Version: $NEXT/" "$tree/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip -z1 -b "$tree" "$STAGE/upgrade/${package}_${NEXT}_$ARCH.deb" > /dev/null ||
    abort "repacking $package as $NEXT"
done
rm -rf "$STAGE/repack"

container_tree
container_boot --bind-ro="$STAGE/debs:/mnt/debs" --bind-ro="$STAGE/upgrade:/mnt/upgrade"
apt_get() { $IN env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >> "$W/apt.log" 2>&1; }
: > "$W/apt.log"

# --- Install, offline: the packages' dependencies are all in the tree.
check "the container has no Swift toolchain" sh -c "! $IN sh -c 'command -v swift || find / -xdev -name \"libswiftCore*\" | grep -q .'"
check "apt-get install ./edmmd_${VERSION}_$ARCH.deb ./edmm-sim_${VERSION}_$ARCH.deb (no network)" \
  apt_get install --no-install-recommends "/mnt/debs/edmmd_${VERSION}_$ARCH.deb" "/mnt/debs/edmm-sim_${VERSION}_$ARCH.deb"
log "installed"
installed_version() { $IN dpkg-query -W -f '${Version}' "$1" 2>/dev/null; }
check "  dpkg: edmmd $VERSION and edmm-sim $VERSION installed" \
  test "$(installed_version edmmd)/$(installed_version edmm-sim)" = "$VERSION/$VERSION"
files=(/usr/sbin/edmmd /usr/bin/edmmctl /usr/bin/edmm-sim /lib/systemd/system/edmmd.service /lib/systemd/system/edmmd.socket
  /lib/systemd/system/edmmd-metrics.socket /usr/lib/sysusers.d/edmmd.conf /etc/edmmd/edmmd.toml
  /usr/share/man/man8/edmmd.8.gz /usr/share/man/man1/edmmctl.1.gz /usr/share/man/man1/edmm-sim.1.gz
  /usr/share/man/man5/edmmd.toml.5.gz /usr/share/bash-completion/completions/edmmctl
  /usr/share/zsh/vendor-completions/_edmmctl /usr/share/fish/vendor_completions.d/edmmctl.fish)
missing=$(for f in "${files[@]}"; do $IN test -e "$f" || echo "$f"; done)
check "  the files are there (${#files[@]}: binaries, units, sysusers, configuration, man pages, completions)${missing:+; missing: $missing}" test -z "$missing"
check "  /etc/edmmd/edmmd.toml is a conffile" sh -c "$IN dpkg-query -W -f '\${Conffiles}' edmmd | grep -q ' /etc/edmmd/edmmd.toml '"
check "  the unit starts /usr/sbin/edmmd (the path make install filled in)" \
  sh -c "$IN systemctl cat edmmd.service | grep -qx 'ExecStart=/usr/sbin/edmmd --config /etc/edmmd/edmmd.toml'"
out=$($IN systemd-analyze verify edmmd.socket edmmd-metrics.socket edmmd.service 2>&1)
check "  systemd-analyze verify (commands and man pages the units name exist) prints nothing" test -z "$out"
[ -n "$out" ] && echo "$out" | sed 's/^/      /'
check "  user edmmd (group edmm, no shell, locked) and groups edmm and sgx exist" \
  test "$($IN id -gn edmmd) $($IN getent passwd edmmd | cut -d: -f7) $($IN getent shadow edmmd | cut -d: -f2 | cut -c1) $($IN getent group edmm sgx | cut -d: -f1 | tr '\n' ' ')" = "edmm /usr/sbin/nologin ! edmm sgx "
check "  edmmd.socket is enabled and listening" test "$($IN systemctl is-enabled edmmd.socket)/$($IN systemctl is-active edmmd.socket)" = enabled/active
check "  edmmd.service is not started (the socket starts it), edmmd-metrics.socket not enabled" \
  test "$($IN systemctl is-active edmmd.service)/$($IN systemctl is-enabled edmmd-metrics.socket)" = inactive/disabled

# --- The programs, without a Swift toolchain.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null)
version_line=$($IN /usr/sbin/edmmd --version 2>&1)
check "edmmd --version: $version_line" sh -c "echo '$version_line' | grep -Eq '^edmmd $VERSION \\(commit $commit(-dirty)?, built [0-9]{4}-[0-9]{2}-[0-9]{2}T'"
check "  edmmctl --version and edmm-sim --version agree" \
  test "$($IN /usr/bin/edmmctl --version | cut -d' ' -f2-) / $($IN /usr/bin/edmm-sim --version | cut -d' ' -f2-)" = "${version_line#edmmd } / ${version_line#edmmd }"
check "  no Swift library is linked dynamically (ldd /usr/sbin/edmmd)" sh -c "! $IN ldd /usr/sbin/edmmd | grep -q -i swift"
check "  edmmd carries no ICU data (34 MB that Foundation's String methods would pull in)" sh -c "! $IN grep -q -a icudt /usr/sbin/edmmd"
check "man -w edmmd, edmmctl, edmm-sim, edmmd.toml find the pages" \
  test "$($IN man -w edmmd edmmctl edmm-sim edmmd.toml | tr '\n' ' ')" = "/usr/share/man/man8/edmmd.8.gz /usr/share/man/man1/edmmctl.1.gz /usr/share/man/man1/edmm-sim.1.gz /usr/share/man/man5/edmmd.toml.5.gz "
warnings=$($IN sh -c 'for p in edmmd edmmctl edmm-sim edmmd.toml; do MANWIDTH=80 man --warnings $p 2>&1 >/dev/null; done')
check "  they render without a groff warning${warnings:+: $warnings}" test -z "$warnings"
check "  edmmd.toml(5) documents every key of the configuration" \
  sh -c "$IN man edmmd.toml 2>/dev/null | grep -q 'max_preheat = \"64MiB\"' && $IN man edmmd.toml 2>/dev/null | grep -q 'fd_store = true'"
check "the bash completion of edmmctl loads and completes its commands" \
  sh -c "$IN bash -c '. /usr/share/bash-completion/completions/edmmctl && complete -p edmmctl >/dev/null && COMP_WORDS=(edmmctl st) COMP_CWORD=1 && \$(complete -p edmmctl | sed -E \"s/.* -F ([^ ]+) .*/\\1/\") edmmctl st edmmctl && printf \"%s\\n\" \"\${COMPREPLY[@]}\"' | grep -qx status"

# --- Socket activation: the first connection starts edmmd.
check "the first edmmctl status starts edmmd through the socket and is answered" sh -c "$IN edmmctl status | grep -q simulated"
check "  edmmd.service is active, on the socket systemd passed, as user edmmd" \
  sh -c "test \"\$($IN systemctl is-active edmmd.service)\" = active && $IN journalctl -u edmmd.service -o cat | grep -q 'socket activation' && test \"\$($IN ps -o user= -p \$($IN systemctl show -p MainPID --value edmmd.service) | tr -d ' ')\" = edmmd"

log "An enclave host"
hold_start /usr/bin/edmm-sim packages-test
check "an edmm-sim enclave host registers and its EPCM matches" test "$(field "$HOLD_READY" epcmMatches)/$(field "$HOLD_READY" ledgerMatches)" = true/true
check "  it allocates through edmmd" test "$(field "$(hold "allocate 64")" ok)" = true

# --- Upgrade while the host is attached: the postinst try-restarts edmmd.service; the socket
# stays; the FD store keeps the enclave.
log "Upgrade to $NEXT"
before=$(hold status)
pid=$(show MainPID)
old_inode=$($IN stat -c %i /usr/sbin/edmmd)
socket_since=$($IN systemctl show -p ActiveEnterTimestampMonotonic --value edmmd.socket)
check "apt-get install ./edmmd_${NEXT}_$ARCH.deb ./edmm-sim_${NEXT}_$ARCH.deb" \
  apt_get install "/mnt/upgrade/edmmd_${NEXT}_$ARCH.deb" "/mnt/upgrade/edmm-sim_${NEXT}_$ARCH.deb"
check "  dpkg: edmmd $NEXT" test "$(installed_version edmmd)" = "$NEXT"
new_pid=$(show MainPID)
check "  a new edmmd process (pid $pid -> $new_pid), running the upgraded /usr/sbin/edmmd" \
  sh -c "test '$new_pid' != '$pid' -a '$new_pid' != 0 && ! $IN kill -0 $pid 2>/dev/null && test \"\$($IN stat -L -c %i /proc/$new_pid/exe)\" = \"\$($IN stat -c %i /usr/sbin/edmmd)\" -a \"\$($IN stat -c %i /usr/sbin/edmmd)\" != '$old_inode'"
check "  edmmd.socket was not restarted (connections wait in its backlog)" \
  test "$($IN systemctl show -p ActiveEnterTimestampMonotonic --value edmmd.socket)/$($IN systemctl is-active edmmd.socket)" = "$socket_since/active"
check_restored "$before" 1

# --- A broken configuration: a reload keeps the running one and says why; a start refuses it
# once, without a restart loop (RestartPreventExitStatus=1).
log "A broken configuration"
$IN cp /etc/edmmd/edmmd.toml /run/edmmd.toml.good
$IN sh -c 'printf "\n[batch]\nwindow_us = \"soon\"\n" >> /etc/edmmd/edmmd.toml'
pid=$(show MainPID)
$IN systemctl reload edmmd.service
check "systemctl reload with a broken file: edmmd keeps running (same pid)" \
  test "$(show ActiveState)/$(show MainPID)" = "active/$pid"
check "  and the journal says why, with file:line" \
  wait_for 10 sh -c "$IN journalctl -u edmmd.service -o cat | grep 'configuration not reloaded' | grep -q '/etc/edmmd/edmmd.toml:[0-9]'"
check "  the host is still served" test "$(field "$(hold "allocate 16")" ok)" = true
bye=$(hold quit)
check "  the host unregisters and exits" test "$(field "$bye" event)" = bye
hold_stop
$IN systemctl restart edmmd.service 2> /dev/null
sleep 3
check "systemctl restart with the broken file fails once: exit status 1, no restart loop" \
  test "$(show ActiveState)/$(show ExecMainStatus)/$(show NRestarts)" = "failed/1/0"
$IN cp /run/edmmd.toml.good /etc/edmmd/edmmd.toml
$IN systemctl reset-failed edmmd.service edmmd.socket
$IN systemctl start edmmd.socket
check "  with the file fixed, the next connection starts it again" sh -c "$IN edmmctl status | grep -q simulated"

# --- Purge.
log "Purge"
# --- The C libraries: the runtime's shared library, the simulator's, and the files to build with.
check "apt-get install ./libedmm0 ./libedmm-sim0 ./libedmm-dev (no network)" apt_get install --no-install-recommends \
  "/mnt/debs/libedmm0_${VERSION}_$ARCH.deb" "/mnt/debs/libedmm-sim0_${VERSION}_$ARCH.deb" "/mnt/debs/libedmm-dev_${VERSION}_$ARCH.deb"
multiarch=$($IN dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
libfiles=(/usr/include/edmm/edmm.h /usr/include/edmm/edmm_enclave.h /usr/include/edmm/edmm_sim.h
  /usr/include/edmm/edmm_interpose.h "/usr/lib/$multiarch/libedmm-interpose.so"
  "/usr/lib/$multiarch/libedmm.so.0" "/usr/lib/$multiarch/libedmm.so" "/usr/lib/$multiarch/libedmm.a"
  "/usr/lib/$multiarch/libedmm_enclave.a" "/usr/lib/$multiarch/libedmm_sim.so.0"
  "/usr/lib/$multiarch/pkgconfig/edmm.pc" "/usr/lib/$multiarch/pkgconfig/edmm-sim.pc")
missing=$(for f in "${libfiles[@]}"; do $IN test -e "$f" || echo "$f"; done)
check "  headers, libraries and pkg-config files are there${missing:+; missing: $missing}" test -z "$missing"
check "  edmm.pc names the multiarch library folder" sh -c "$IN grep -qx 'libdir=/usr/lib/$multiarch' '/usr/lib/$multiarch/pkgconfig/edmm.pc'"
check "apt-get purge libedmm-dev libedmm-sim0 libedmm0" apt_get purge libedmm-dev libedmm-sim0 libedmm0

check "apt-get purge edmmd edmm-sim" apt_get purge edmmd edmm-sim
check "  no edmmd process is left" sh -c "! $IN pgrep -x edmmd && ! $IN pgrep -u edmmd"
check "  no unit is left (edmmd.socket, edmmd.service: not found)" \
  test "$($IN systemctl show -p LoadState --value edmmd.socket)/$($IN systemctl show -p LoadState --value edmmd.service)" = not-found/not-found
left=$(for f in /usr/sbin/edmmd /usr/bin/edmmctl /usr/bin/edmm-sim /etc/edmmd /run/edmmd /lib/systemd/system/edmmd.socket \
  /etc/systemd/system/sockets.target.wants/edmmd.socket /var/lib/systemd/deb-systemd-helper-enabled/edmmd.socket.dsh-also; do $IN test -e "$f" && echo "$f"; done)
check "  no file is left (binaries, configuration, runtime directory, enablement)${left:+: $left}" test -z "$left"
check "  dpkg knows neither package" sh -c "! $IN dpkg-query -W edmmd edmm-sim 2>/dev/null"
check "  the edmmd user and edmm group stay, locked (Debian keeps system accounts)" \
  test "$($IN id -gn edmmd 2>&1)/$($IN getent shadow edmmd | cut -d: -f2 | cut -c1)" = "edmm/!"

log "done"
journal > "$W/edmmd.journal" 2>&1
finish
