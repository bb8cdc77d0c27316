#!/usr/bin/env bash
# The real-systemd test (issue #4): boots a real systemd (PID 1 of a systemd-nspawn container
# made with debootstrap), installs edmmd's units and binaries, and checks what the units promise:
# verify, hardening, start with live STATUS, socket and runtime-directory permissions, reload,
# restart through the FD store, the watchdog, a clean stop, and socket activation.
#
# Usage: scripts/test-systemd.sh          (root, or sudo without a password)
#   EDMMD_BIN_DIR   where edmmd, edmmctl and edmm-sim are (default .build/debug; build first)
#   EDMMD_SYSTEMD_TEST_DIR   work directory (default .build/systemd-test; the Debian tree made
#                   there is kept and reused: delete it to start over)
# Also the journal: priorities (journalctl -p) and fields (ENCLAVE=, UID=) of edmmd's lines.
# The last line is "N passed, N failed". It prints "skipped" only where nspawn cannot run at all
# (not root and no sudo, or no namespaces); missing packages are installed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then exec sudo -n -E "$0" "$@"; fi
  echo "skipped: the real-systemd test needs root (or sudo without a password) to run systemd-nspawn"
  exit 0
fi
if ! unshare --mount --pid --fork true 2>/dev/null; then
  echo "skipped: this machine cannot create mount and PID namespaces, so systemd-nspawn cannot run here"
  exit 0
fi

W=${EDMMD_SYSTEMD_TEST_DIR:-$REPO/.build/systemd-test}
BIN=${EDMMD_BIN_DIR:-$REPO/.build/debug}
ROOT=$W/rootfs
STAGE=$W/stage.$$
CG=edmmd-systemd-test-$$
T0=$(date +%s%N)
log() { echo "[$(( ($(date +%s%N) - T0) / 1000000 )) ms] $*"; }

passed=0 failed=0
check() {  # check "what" command...: one line per check, counted
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok    $what"; else failed=$((failed + 1)); echo "FAIL  $what"; fi
}
finish() { echo; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
wait_for() {  # wait_for SECONDS command...: retries every 0.1 s
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge "$deadline" ] && return 1; sleep 0.1; done
}

"$REPO/scripts/install-deps.sh" test || { echo "FAIL  installing systemd-container and debootstrap"; failed=1; finish; }
for p in edmmd edmmctl edmm-sim; do
  [ -x "$BIN/$p" ] || { echo "FAIL  $BIN/$p is missing: build first (swift build)"; failed=1; finish; }
done
# The binaries link the Swift runtime of the toolchain that built them; the container sees that
# directory read-only at the same path (their RUNPATH), instead of a second, static build.
SWIFT_LIB=$(dirname "$(ldd "$BIN/edmmd" | awk '/libswiftCore\.so/ {print $3; exit}')")
[ -f "$SWIFT_LIB/libswiftCore.so" ] || { echo "FAIL  cannot find the Swift runtime edmmd links"; failed=1; finish; }

# --- The Debian tree, made once and kept (the container runs on a throw-away overlay of it).
TREE_MARK="bookworm minbase systemd dbus procps v1"
if [ "$(cat "$ROOT/.edmmd-test-tree" 2>/dev/null)" != "$TREE_MARK" ]; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  MIRROR=${MIRROR:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $MIRROR into $ROOT (about 35 s)"
  rm -rf "$ROOT" "$ROOT.new"
  mkdir -p "$W"
  if ! debootstrap --variant=minbase --include=systemd,dbus,procps bookworm "$ROOT.new" "$MIRROR" > "$W/debootstrap.log" 2>&1; then
    tail -5 "$W/debootstrap.log"; echo "FAIL  debootstrap (log: $W/debootstrap.log)"; failed=1; finish
  fi
  chroot "$ROOT.new" systemctl mask console-getty.service getty.target > /dev/null 2>&1
  echo "$TREE_MARK" > "$ROOT.new/.edmmd-test-tree"
  mv "$ROOT.new" "$ROOT"
  log "tree ready"
fi

# --- What goes into the container: binaries, units, users, the test's configuration.
mkdir -p "$STAGE/bin" "$STAGE/files" "$STAGE/io"
cp "$BIN/edmmd" "$BIN/edmmctl" "$BIN/edmm-sim" "$STAGE/bin/"
cp "$REPO"/systemd/edmmd.service "$REPO"/systemd/edmmd.socket "$REPO"/systemd/edmmd-metrics.socket "$REPO"/systemd/edmmd.sysusers "$STAGE/files/"
cat > "$STAGE/files/edmmd.toml" <<'EOF'
[daemon]
device = "simulated"
log_level = "info"
[simulator]
epc_size = "64MiB"
[metrics]
listen = ""
EOF
mkfifo "$STAGE/io/hold.in" "$STAGE/io/hold.out"

NSPAWN='' LEADER='' HOLD=''
cgroup_dirs() {  # where to put nspawn: a private cgroup in every hierarchy systemd uses
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "/sys/fs/cgroup/$CG"; return; fi
  [ -d /sys/fs/cgroup/unified ] && echo "/sys/fs/cgroup/unified/$CG"
  [ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd/$CG"
}
cleanup() {
  exec 7>&- 8<&- 2>/dev/null
  if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
    kill -TERM "$NSPAWN" 2>/dev/null   # SIGTERM to nspawn = a clean halt of the container
    for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NSPAWN" 2>/dev/null
    wait "$NSPAWN" 2>/dev/null
  fi
  [ -n "$HOLD" ] && kill -KILL "$HOLD" 2>/dev/null && wait "$HOLD" 2>/dev/null
  for dir in $(cgroup_dirs); do
    [ -d "$dir" ] || continue
    for pid in $(cat $(find "$dir" -name cgroup.procs) 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rmdir /run/systemd/nspawn/locks /run/systemd/nspawn/propagate/* /run/systemd/nspawn/propagate /run/systemd/nspawn 2>/dev/null
  rm -rf "$STAGE"
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Boot. No systemd on the host (PID 1 here is not systemd): --register=no --keep-unit, and a
# cgroup of our own so that nspawn's payload/ and supervisor/ do not land in the root cgroup.
for dir in $(cgroup_dirs); do mkdir -p "$dir"; done
(
  for dir in $(cgroup_dirs); do echo $BASHPID > "$dir/cgroup.procs"; done
  exec systemd-nspawn -D "$ROOT" -b --register=no --keep-unit --private-network --volatile=overlay \
    --machine="edmmd-test-$$" --console=read-only \
    --bind-ro="$STAGE/bin:/usr/local/bin" --bind-ro="$STAGE/files:/mnt/edmmd" --bind-ro="$SWIFT_LIB" \
    > "$W/boot.log" 2>&1
) &
NSPAWN=$!
for _ in $(seq 300); do   # the container's PID 1 is a child of nspawn
  for c in $(ps -o pid= --ppid "$NSPAWN" 2>/dev/null); do [ "$(cat /proc/$c/comm 2>/dev/null)" = systemd ] && LEADER=$c; done
  [ -n "$LEADER" ] && break; sleep 0.05
done
if [ -z "$LEADER" ]; then tail -20 "$W/boot.log"; echo "FAIL  the container did not boot (log: $W/boot.log)"; failed=1; finish; fi
IN="nsenter -t $LEADER -m -u -i -n -p"
[ "$(readlink /proc/$LEADER/ns/cgroup)" != "$(readlink /proc/self/ns/cgroup)" ] && IN="$IN -C"
wait_for 15 $IN test -S /run/systemd/private
state=$($IN systemctl is-system-running --wait 2>&1)
log "booted: system $state (container PID 1 = host pid $LEADER)"

show() { $IN systemctl show -p "$1" --value edmmd.service; }
journal() { $IN journalctl -u edmmd.service --no-pager -o cat; }
flat() {  # flat JSON: one "key.path=value" line per field (booleans as true/false)
  python3 -I -c 'import json, sys
def walk(prefix, v):
    if isinstance(v, dict):
        for k, x in v.items(): walk(prefix + k + ".", x)
    elif not isinstance(v, list):
        print(prefix[:-1] + "=" + (str(v).lower() if isinstance(v, bool) else str(v)))
walk("", json.loads(sys.argv[1]))' "$1" 2>/dev/null
}
field() { sed -n "s/^$2=//p" <<< "$1"; }  # field FLAT key.path
hold() {  # hold COMMAND: one command to the edmm-sim hold process, its answer flattened
  echo "$1" >&7 && read -r -t 60 line <&8 && flat "$line"
}

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
SWIFT_BACKTRACE=enable=no $IN /usr/local/bin/edmm-sim hold --socket /run/edmmd/control.sock --label systemd-test --pages 1024 \
  < "$STAGE/io/hold.in" > "$STAGE/io/hold.out" 2> "$W/hold.err" &
HOLD=$!
exec 7> "$STAGE/io/hold.in" 8< "$STAGE/io/hold.out"
read -r -t 60 line <&8
ready=$(flat "$line")
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
reattached() { test "$(field "$(hold status)" reconnections)" = "$1"; }
check "the host reconnected and ATTACHed again" wait_for 30 reattached 1
after=$(hold status)
check "after the restart the host finds its enclave (handle $handle)" test "$(field "$after" handle)" = "$handle"
for state in committed pooled trimming removing tcs quota; do
  check "  and its ledger: $state pages $(field "$before" ledger.$state) = $(field "$after" ledger.$state)" test "$(field "$before" ledger.$state)" = "$(field "$after" ledger.$state)"
done
for counter in requests_allocate_ok requests_allocate_failed requests_trim_ok ioctl_modify_types_calls ioctl_remove_pages_pages; do
  check "  and its counters: $counter $(field "$before" counters.$counter) = $(field "$after" counters.$counter)" test "$(field "$before" counters.$counter)" = "$(field "$after" counters.$counter)"
done
check "  and the EPCM matches its record and edmmd's ledger" test "$(field "$after" epcmMatches)/$(field "$after" ledgerMatches)" = true/true
check "the journal says the enclave was restored" sh -c "$IN journalctl -u edmmd.service -o cat | grep -q 'restored 1 of 1 enclaves'"

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
wait "$HOLD" 2>/dev/null; HOLD=''
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
