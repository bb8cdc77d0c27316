#!/usr/bin/env bash
# The real-systemd test (issue #4): boots a real systemd (PID 1 of a systemd-nspawn container
# made with debootstrap), installs edmmd's units and binaries, and checks what the units promise:
# verify, hardening, start with live STATUS, socket and runtime-directory permissions, reload,
# restart through the FD store, the watchdog, a clean stop, and socket activation.
#
# Usage: scripts/test-systemd.sh          (root, or sudo without a password)
#   EDMMD_BIN_DIR   where edmmd, edmmctl and edmm-sim are (default .build/debug; build first)
#   EDMMD_SYSTEMD_TEST_DIR   work directory (default .build/systemd-test)
#   EDMMD_CONTAINER_TREE     the Debian tree (default .build/systemd-test/rootfs), made once
#                   and reused, also by scripts/test-packages.sh: delete it to start over
# Also the journal: priorities (journalctl -p) and fields (ENCLAVE=, UID=) of edmmd's lines.
# The last line is "N passed, N failed". It prints "skipped" only where nspawn cannot run at all
# (not root and no sudo, or no namespaces); missing packages are installed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
W=${EDMMD_SYSTEMD_TEST_DIR:-$REPO/.build/systemd-test}
BIN=${EDMMD_BIN_DIR:-$REPO/.build/debug}
STAGE=$W/stage.$$
. scripts/lib/container.sh
container_require_root "$@"

"$REPO/scripts/install-deps.sh" test || abort "installing systemd-container and debootstrap"
for p in edmmd edmmctl edmm-sim; do
  [ -x "$BIN/$p" ] || abort "$BIN/$p is missing: build first (swift build)"
done
# The binaries link the Swift runtime of the toolchain that built them; the container sees that
# directory read-only at the same path (their RUNPATH), instead of a second, static build.
SWIFT_LIB=$(dirname "$(ldd "$BIN/edmmd" | awk '/libswiftCore\.so/ {print $3; exit}')")
[ -f "$SWIFT_LIB/libswiftCore.so" ] || abort "cannot find the Swift runtime edmmd links"

container_tree

# --- What goes into the container: binaries, units (with the paths `make install` fills in for
# /usr/local), users, the test's configuration.
mkdir -p "$STAGE/bin" "$STAGE/files"
cp "$BIN/edmmd" "$BIN/edmmctl" "$BIN/edmm-sim" "$STAGE/bin/"
SBINDIR=/usr/local/sbin SYSCONFDIR=/etc scripts/install.sh units "$STAGE/files"
cp "$REPO"/systemd/edmmd.sysusers "$STAGE/files/"
cat > "$STAGE/files/edmmd.toml" <<'EOF'
[daemon]
device = "simulated"
log_level = "info"
[simulator]
epc_size = "64MiB"
[metrics]
listen = ""
EOF

container_boot --bind-ro="$STAGE/bin:/usr/local/bin" --bind-ro="$STAGE/bin:/usr/local/sbin" \
  --bind-ro="$STAGE/files:/mnt/edmmd" --bind-ro="$SWIFT_LIB"

# --- Install, as a package would.
$IN sh -c 'install -m644 /mnt/edmmd/edmmd.service /mnt/edmmd/edmmd.socket /mnt/edmmd/edmmd-metrics.socket /etc/systemd/system/ &&
  install -D -m644 /mnt/edmmd/edmmd.sysusers /usr/lib/sysusers.d/edmmd.conf && systemd-sysusers edmmd.conf &&
  install -D -m644 /mnt/edmmd/edmmd.toml /etc/edmmd/edmmd.toml && systemctl daemon-reload'
log "installed"

out=$($IN systemd-analyze verify --man=no edmmd.socket edmmd-metrics.socket edmmd.service 2>&1)
check "systemd-analyze verify prints nothing for the three units" test -z "$out"
[ -n "$out" ] && echo "$out" | sed 's/^/      /'
security=$($IN systemd-analyze security --offline=yes --man=no edmmd.service 2>&1 | grep -o 'edmmd.service: [0-9.]*' | awk '{print $2}')
check "systemd-analyze security: exposure $security, at most 2.5" awk -v e="${security:-99}" 'BEGIN { exit !(e <= 2.5) }'
check "systemd-sysusers made user edmmd (group edmm) and group sgx" test "$($IN id -gn edmmd) $($IN getent group sgx | cut -d: -f1)" = "edmm sgx"

# --- Start: READY=1 means the socket serves; STATUS= carries live figures. edmmd-metrics.socket
# hands the Prometheus endpoint its listening socket ([metrics] listen is off in this config).
$IN systemctl start edmmd-metrics.socket edmmd.service
check "systemctl start edmmd: ActiveState=active" test "$(show ActiveState)" = active
figures='simulated device: [0-9]+ enclaves, [0-9]+ connections, [0-9]+ of 64 MiB EPC committed, [0-9]+ requests/s, [0-9]+ ioctls'
check "StatusText carries live figures ($(show StatusText))" wait_for 5 sh -c "$IN systemctl show -p StatusText --value edmmd.service | grep -Eq '$figures'"
scrape() { $IN bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3'; }
check "edmmd-metrics.socket: /metrics is served on the socket systemd passed" sh -c "$(declare -f scrape); IN='$IN'; scrape | grep -q '^edmmd_'"
check "edmmd runs as user edmmd" test "$($IN ps -o user= -p "$(show MainPID)" | tr -d ' ')" = edmmd
socket_mode=$($IN stat -c '%a %U:%G' /run/edmmd/control.sock)
check "the control socket is $socket_mode: 660 edmmd:edmm (SocketMode/User/Group)" test "$socket_mode" = "660 edmmd:edmm"
directory_mode=$($IN stat -c '%a %U:%G' /run/edmmd)
check "the runtime directory is $directory_mode: 755 edmmd:edmm (RuntimeDirectory*)" test "$directory_mode" = "755 edmmd:edmm"

log "A simulated enclave host"
# --- A simulated enclave host inside the container, kept for the rest of the test.
hold_start /usr/local/bin/edmm-sim systemd-test
ready=$HOLD_READY
check "a simulated enclave host registers and its EPCM matches (edmm-sim hold)" test "$(field "$ready" epcmMatches)/$(field "$ready" ledgerMatches)" = true/true
handle=$(field "$ready" handle)
check "StatusText counts its enclave and committed EPC" wait_for 5 sh -c "$IN systemctl show -p StatusText --value edmmd.service | grep -Eq ' 1 enclaves, .* [1-9][0-9]* of 64 MiB'"

log "Reload"
# --- Reload: a lower quota applies to the connected client, which stays connected.
$IN sh -c 'cat >> /etc/edmmd/edmmd.toml' <<'EOF'
[quota]
enclave = "6MiB"
EOF
$IN systemctl reload edmmd.service
quota_is() { test "$(field "$(hold status)" ledger.quota)" = "$1"; }
check "systemctl reload: the client sees the new quota (1536 pages)" wait_for 10 quota_is 1536
refused=$(hold "allocate 1024")
check "an allocation over it is refused: $(field "$refused" code)" test "$(field "$refused" code)" = quota-exceeded
status=$(hold status)
check "the client was not dropped (same connection, no reconnection)" test "$(field "$status" reconnections)" = 0
check "the journal has the reload" sh -c "$IN journalctl -u edmmd.service -o cat | grep -q 'configuration reloaded'"

log "The journal"
# --- Logs: edmmd writes journal entries with a priority and fields when stderr is the journal.
$IN cp /etc/edmmd/edmmd.toml /etc/edmmd/edmmd.toml.good
$IN sh -c 'printf "[batch]\nwindow_us = 0\n" >> /etc/edmmd/edmmd.toml'
$IN systemctl reload edmmd.service
check "a reload of a bad file is logged at priority err" wait_for 10 sh -c "$IN journalctl -u edmmd.service -p err -o cat | grep -q 'configuration not reloaded'"
$IN mv /etc/edmmd/edmmd.toml.good /etc/edmmd/edmmd.toml
$IN systemctl reload edmmd.service
wait_for 10 sh -c "$IN journalctl -u edmmd.service -o cat | grep -c 'configuration reloaded' | grep -q 2"
priorities() {  # priorities ARGS...: "PRIORITY SYSLOG_IDENTIFIER" of each entry journalctl -u edmmd ARGS selects
  $IN journalctl -u edmmd.service --no-pager -o json "$@" | python3 -I -c 'import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(e.get("PRIORITY", "?"), e.get("SYSLOG_IDENTIFIER", "?"))'
}
warnings=$(priorities -p warning)
only_warnings() { [ -n "$warnings" ] && ! grep -qv '^[0-4] ' <<< "$warnings"; }
check "journalctl -p warning -u edmmd shows only warnings and worse ($(wc -l <<< "$warnings") entries)" only_warnings
check "  and edmmd's own lines among them" grep -q '^3 edmmd$' <<< "$warnings"
info_lines() { priorities | grep -q '^6 edmmd$'; }
check "  while edmmd's info lines are in the journal at priority 6" info_lines
check "journalctl -u edmmd ENCLAVE=$handle finds the enclave's registration" \
  sh -c "$IN journalctl -u edmmd.service -o cat ENCLAVE=$handle | grep -q 'enclave registered'"
check "journalctl -u edmmd UID=0 finds it too, and UID=4242 nothing" \
  sh -c "$IN journalctl -u edmmd.service -o cat UID=0 | grep -q 'enclave registered' && [ -z \"\$($IN journalctl -u edmmd.service -o cat UID=4242)\" ]"
check "logfmt values with spaces are quoted (owner=\"pid ...\")" \
  sh -c "$IN journalctl -u edmmd.service -o cat | grep 'enclave registered' | grep -q 'owner=\"pid [0-9]* uid 0 gid 0\"'"

log "Restart"
# --- Restart: the FD store keeps the enclave; the host re-attaches and finds it as it was.
before=$(hold status)
pid=$(show MainPID)
$IN systemctl restart edmmd.service
check "systemctl restart edmmd: a new edmmd is active" sh -c "test \"\$($IN systemctl show -p ActiveState --value edmmd.service)\" = active && test \"\$($IN systemctl show -p MainPID --value edmmd.service)\" != $pid"
check_restored "$before" 1

log "The watchdog"
# --- The watchdog: a drop-in turns on the test-only fault (SIGUSR2 stalls the core queue).
$IN sh -c 'mkdir -p /run/systemd/system/edmmd.service.d && cat > /run/systemd/system/edmmd.service.d/watchdog-test.conf' <<'EOF'
[Service]
Environment=EDMMD_TEST_FAULTS=stall-core-on-sigusr2 SWIFT_BACKTRACE=enable=no
WatchdogSec=2s
TimeoutAbortSec=5s
LimitCORE=0
EOF
$IN systemctl daemon-reload
$IN systemctl restart edmmd.service
wait_for 30 reattached 2
restarts=$(show NRestarts) pid=$(show MainPID)
$IN systemctl kill --kill-who=main -s SIGUSR2 edmmd.service
restarted() { [ "$(show NRestarts)" -gt "$restarts" ] && [ "$(show ActiveState)" = active ] && [ "$(show MainPID)" != "$pid" ]; }
check "a hung edmmd is killed by the watchdog and restarted" wait_for 30 restarted
log "NRestarts $restarts -> $(show NRestarts)"
check "the journal says: watchdog timeout" sh -c "$IN journalctl -u edmmd.service -o cat | grep -qi 'watchdog timeout'"
check "the host re-attached after the watchdog restart" wait_for 30 reattached 3
check "  to the same enclave" test "$(field "$(hold status)" handle)" = "$handle"
$IN rm /run/systemd/system/edmmd.service.d/watchdog-test.conf
$IN systemctl daemon-reload
$IN systemctl restart edmmd.service
no_fault() { ! $IN cat "/proc/$(show MainPID)/environ" | tr '\0' '\n' | grep -q EDMMD_TEST_FAULTS; }
check "without the drop-in the fault is off again" no_fault
wait_for 30 reattached 4

log "Stop"
# --- Stop: the host goes first (a reconnecting host would start edmmd again through the socket).
bye=$(hold quit)
check "the host unregisters and exits" test "$(field "$bye" event)" = bye
hold_stop
$IN systemctl stop edmmd.service
check "systemctl stop edmmd: inactive, Result=success, exit status 0" test "$(show ActiveState)/$(show Result)/$(show ExecMainStatus)" = inactive/success/0
check "  no edmmd process is left" sh -c "! $IN pgrep -x edmmd"
check "  edmmd said it stopped" sh -c "$IN journalctl -u edmmd.service -o cat | tail -5 | grep -q 'edmmd: stopped'"

log "Socket activation"
# --- Socket activation: with only the socket listening, the first connection starts edmmd.
check "edmmd.socket is still listening, edmmd.service inactive" test "$($IN systemctl is-active edmmd.socket)/$(show ActiveState)" = active/inactive
check "the first connection (edmmctl status) starts edmmd and is served" sh -c "$IN /usr/local/bin/edmmctl status | grep -q simulated"
check "  edmmd.service is active, on the socket systemd passed" sh -c "test \"\$($IN systemctl show -p ActiveState --value edmmd.service)\" = active && $IN journalctl -u edmmd.service -o cat | grep -q 'socket activation'"
$IN systemctl stop edmmd.socket edmmd-metrics.socket edmmd.service
check "stopping edmmd.socket removes the socket file (RemoveOnStop)" sh -c "! $IN test -e /run/edmmd/control.sock"

log "done"
journal > "$W/edmmd.journal" 2>&1
finish
