# A real systemd booted in a systemd-nspawn container, for the stages that test edmmd under it
# (scripts/test-systemd.sh, scripts/test-packages.sh). Sourced; the caller sets REPO and W (its
# work directory) first, then calls, in this order:
#   container_require_root "$@"   re-runs the script with sudo, or prints "skipped" and exits 0
#                                 where nspawn cannot run at all
#   container_tree                makes (once, then reuses) the Debian tree in $TREE
#   container_boot NSPAWN-OPTION...   boots it on a throw-away overlay; sets IN (the nsenter
#                                 prefix that runs a command inside) and stops it on exit
# and the helpers below: check/finish (one line per check, then "N passed, N failed"), wait_for,
# log, and hold_start/hold (an edmm-sim hold enclave host inside, driven line by line).

# The tree both stages share: minbase, systemd, and what the tests use inside (procps for pgrep
# and ps, man-db for `man -w`). Deleting it, or a change of this line, makes it again.
TREE_MARK="bookworm minbase systemd dbus procps man-db v2"
TREE=${EDMMD_CONTAINER_TREE:-$REPO/.build/systemd-test/rootfs}

T0=$(date +%s%N)
log() { echo "[$(( ($(date +%s%N) - T0) / 1000000 )) ms] $*"; }

passed=0 failed=0
check() {  # check "what" command...: one line per check, counted
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok    $what"; else failed=$((failed + 1)); echo "FAIL  $what"; fi
}
finish() { echo; echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
abort() { echo "FAIL  $*"; failed=$((failed + 1)); finish; }
wait_for() {  # wait_for SECONDS command...: retries every 0.1 s
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -ge "$deadline" ] && return 1; sleep 0.1; done
}

container_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then exec sudo -n -E "$0" "$@"; fi
    echo "skipped: this test needs root (or sudo without a password) to run systemd-nspawn"
    exit 0
  fi
  if ! unshare --mount --pid --fork true 2>/dev/null; then
    echo "skipped: this machine cannot create mount and PID namespaces, so systemd-nspawn cannot run here"
    exit 0
  fi
}

container_tree() {
  [ "$(cat "$TREE/.edmmd-test-tree" 2>/dev/null)" = "$TREE_MARK" ] && return 0
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
  mirror=${mirror:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $mirror into $TREE (about 35 s)"
  rm -rf "$TREE" "$TREE.new"
  mkdir -p "$(dirname "$TREE")"
  if ! debootstrap --variant=minbase --include=systemd,dbus,procps,man-db bookworm "$TREE.new" "$mirror" > "$TREE.log" 2>&1; then
    tail -5 "$TREE.log"; abort "debootstrap (log: $TREE.log)"
  fi
  chroot "$TREE.new" systemctl mask console-getty.service getty.target > /dev/null 2>&1
  echo "$TREE_MARK" > "$TREE.new/.edmmd-test-tree"
  mv "$TREE.new" "$TREE"
  log "tree ready"
}

CG=edmmd-container-$$ NSPAWN='' LEADER='' IN='' HOLD=''
cgroup_dirs() {  # where to put nspawn: a private cgroup in every hierarchy systemd uses
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "/sys/fs/cgroup/$CG"; return; fi
  [ -d /sys/fs/cgroup/unified ] && echo "/sys/fs/cgroup/unified/$CG"
  [ -d /sys/fs/cgroup/systemd ] && echo "/sys/fs/cgroup/systemd/$CG"
}
container_cleanup() {
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
  [ -n "${STAGE:-}" ] && rm -rf "$STAGE"
  true
}
trap container_cleanup EXIT
trap 'exit 130' INT TERM

# Boots $TREE on a throw-away overlay (--volatile=overlay), with a private network, from a cgroup
# of ours (the host's PID 1 is not systemd: --register=no --keep-unit, and nspawn's payload/ and
# supervisor/ must not land in the root cgroup). Extra nspawn options (bind mounts) follow.
container_boot() {
  for dir in $(cgroup_dirs); do mkdir -p "$dir"; done
  (
    for dir in $(cgroup_dirs); do echo $BASHPID > "$dir/cgroup.procs"; done
    exec systemd-nspawn -D "$TREE" -b --register=no --keep-unit --private-network --volatile=overlay \
      --machine="edmmd-test-$$" --console=read-only "$@" > "$W/boot.log" 2>&1
  ) &
  NSPAWN=$!
  for _ in $(seq 300); do   # the container's PID 1 is a child of nspawn
    for c in $(ps -o pid= --ppid "$NSPAWN" 2>/dev/null); do [ "$(cat /proc/$c/comm 2>/dev/null)" = systemd ] && LEADER=$c; done
    [ -n "$LEADER" ] && break; sleep 0.05
  done
  [ -n "$LEADER" ] || { tail -20 "$W/boot.log"; abort "the container did not boot (log: $W/boot.log)"; }
  IN="nsenter -t $LEADER -m -u -i -n -p"
  [ "$(readlink /proc/$LEADER/ns/cgroup)" != "$(readlink /proc/self/ns/cgroup)" ] && IN="$IN -C"
  wait_for 15 $IN test -S /run/systemd/private
  local state; state=$($IN systemctl is-system-running --wait 2>&1)
  log "booted: system $state (container PID 1 = host pid $LEADER)"
}

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

# hold_start EDMM-SIM LABEL: an `edmm-sim hold` enclave host inside the container, kept until
# `hold quit`. Not in a subshell: its first line (registered, and whether its EPCM matches),
# flattened, is left in $HOLD_READY.
hold_start() {
  mkdir -p "$STAGE/io" && mkfifo "$STAGE/io/hold.in" "$STAGE/io/hold.out"
  SWIFT_BACKTRACE=enable=no $IN "$1" hold --socket /run/edmmd/control.sock --label "$2" --pages 1024 \
    < "$STAGE/io/hold.in" > "$STAGE/io/hold.out" 2> "$W/hold.err" &
  HOLD=$!
  exec 7> "$STAGE/io/hold.in" 8< "$STAGE/io/hold.out"
  local line; read -r -t 60 line <&8 && HOLD_READY=$(flat "$line")
}
hold() {  # hold COMMAND: one command to the hold process, its answer flattened
  local line
  echo "$1" >&7 && read -r -t 60 line <&8 && flat "$line"
}
hold_stop() {  # after `hold quit`
  wait "$HOLD" 2>/dev/null; HOLD=''
}
reattached() { test "$(field "$(hold status)" reconnections)" = "$1"; }

# check_restored BEFORE RECONNECTIONS: after edmmd restarted, the hold host re-attached (its
# RECONNECTIONS-th time) to the enclave of BEFORE (a `hold status` from before the restart), with
# the same ledger and counters, the EPCM matching, and edmmd said it restored the enclave.
check_restored() {
  local before=$1 after state counter
  check "the host reconnected and ATTACHed again" wait_for 30 reattached "$2"
  after=$(hold status)
  check "  to the same enclave (handle $(field "$before" handle))" test "$(field "$after" handle)" = "$(field "$before" handle)"
  for state in committed pooled trimming removing tcs quota; do
    check "  with the same ledger: $state pages $(field "$before" ledger.$state) = $(field "$after" ledger.$state)" test "$(field "$before" ledger.$state)" = "$(field "$after" ledger.$state)"
  done
  for counter in requests_allocate_ok requests_allocate_failed requests_free_ok requests_trim_ok ioctl_modify_types_calls ioctl_remove_pages_pages; do
    check "  and counters: $counter $(field "$before" counters.$counter) = $(field "$after" counters.$counter)" test "$(field "$before" counters.$counter)" = "$(field "$after" counters.$counter)"
  done
  check "  and the EPCM matches its record and edmmd's ledger" test "$(field "$after" epcmMatches)/$(field "$after" ledgerMatches)" = true/true
  check "  the journal says the enclave was restored" sh -c "$IN journalctl -u edmmd.service -o cat | grep -q 'restored 1 of 1 enclaves'"
}
