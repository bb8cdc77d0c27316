#!/usr/bin/env bash
# What `make install` and `make uninstall` do; the Makefile passes PREFIX, DESTDIR and the
# directories (BINDIR, SBINDIR, DATADIR, MANDIR, SYSCONFDIR, UNITDIR, SYSUSERSDIR, BASHCOMPDIR,
# ZSHCOMPDIR, FISHCOMPDIR, STRIP).
#   install.sh install BIN DIST   the release binaries of BIN (stripped with $STRIP), the man pages
#                                 and completions of DIST, the units, sysusers and configuration,
#                                 and the C libraries `make -C c install` staged in $C_STAGE
#   install.sh uninstall          removes what the manifest lists
#   install.sh units DIR          the unit files, with the installed paths filled in, into DIR
# Every file, symbolic link (l) and directory `install` makes is listed in
# $DATADIR/edmmd/install-manifest, which `uninstall` reads. The configuration is installed only where there is none, and listed with
# its checksum: `uninstall` leaves it when it changed since (it is then the operator's).
set -euo pipefail
cd "$(dirname "$0")/.."
require() {  # require VARIABLE...: each an absolute path
  for variable; do
    [[ ${!variable:-} == /* ]] || { echo "install.sh: $variable must be an absolute path (run it through make)" >&2; exit 2; }
  done
}
DESTDIR=${DESTDIR:-}

units() {  # units DIR
  mkdir -p "$1"
  sed -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" systemd/edmmd.service.in > "$1/edmmd.service"
  cp systemd/edmmd.socket systemd/edmmd-metrics.socket "$1/"
}

checksum() { sha256sum < "$1" | cut -d' ' -f1; }

install_tree() {  # install_tree BIN DIST
  local bin=$1 dist=$2 old=$DESTDIR$MANIFEST
  new=$(mktemp) staged=$(mktemp -d)   # global: the EXIT trap removes them
  trap 'rm -rf "$new" "$staged"' EXIT
  # A previous install's entries stay listed: its directories, files this one no longer has,
  # and its configuration while unchanged.
  if [ -f "$old" ]; then
    while read -r kind a b; do
      case $kind in
        d) [ -d "$DESTDIR$a" ] && echo "d $a" ;;
        f) [ -e "$DESTDIR$a" ] && echo "f $a" ;;
        l) [ -L "$DESTDIR$a" ] && echo "l $a" ;;
        c) [ -f "$DESTDIR$b" ] && [ "$(checksum "$DESTDIR$b")" = "$a" ] && echo "c $a $b" ;;
      esac
    done < "$old" >> "$new"
  fi
  mkdir -p "${DESTDIR:-/}"
  directory() {  # directory PATH: makes it, listing each level it had to make
    local dir=$1 missing=()
    while [ "$dir" != / ] && [ ! -d "$DESTDIR$dir" ]; do missing=("$dir" ${missing[@]+"${missing[@]}"}); dir=$(dirname "$dir"); done
    for dir in ${missing[@]+"${missing[@]}"}; do mkdir -m 755 "$DESTDIR$dir"; echo "d $dir" >> "$new"; done
  }
  put() {  # put MODE SOURCE TARGET [install options]
    local mode=$1 source=$2 target=$3; shift 3
    directory "$(dirname "$target")"
    install -m "$mode" "$@" "$source" "$DESTDIR$target"
    echo "f $target" >> "$new"
  }
  put 755 "$bin/edmmd" "$SBINDIR/edmmd" -s --strip-program="$STRIP"
  put 755 "$bin/edmmctl" "$BINDIR/edmmctl" -s --strip-program="$STRIP"
  put 755 "$bin/edmm-sim" "$BINDIR/edmm-sim" -s --strip-program="$STRIP"
  units "$staged"
  for unit in edmmd.service edmmd.socket edmmd-metrics.socket; do put 644 "$staged/$unit" "$UNITDIR/$unit"; done
  put 644 systemd/edmmd.sysusers "$SYSUSERSDIR/edmmd.conf"
  put 644 "$dist/man/edmmd.8" "$MANDIR/man8/edmmd.8"
  put 644 "$dist/man/edmmd.toml.5" "$MANDIR/man5/edmmd.toml.5"
  for program in edmmctl edmm-sim; do put 644 "$dist/man/$program.1" "$MANDIR/man1/$program.1"; done
  for program in edmmd edmmctl edmm-sim; do
    put 644 "$dist/completions/bash/$program" "$BASHCOMPDIR/$program"
    put 644 "$dist/completions/zsh/_$program" "$ZSHCOMPDIR/_$program"
    put 644 "$dist/completions/fish/$program.fish" "$FISHCOMPDIR/$program.fish"
  done
  # The C libraries (libedmm, libedmm-enclave, libedmm_sim), as `make -C c install` staged them
  # in $C_STAGE: every file and symbolic link, listed like the rest.
  if [ -n "${C_STAGE:-}" ]; then
    local rel
    while read -r rel; do
      if [ -L "$C_STAGE/$rel" ]; then
        directory "$(dirname "/$rel")"
        ln -sfn "$(readlink "$C_STAGE/$rel")" "$DESTDIR/$rel"
        echo "l /$rel" >> "$new"
      else
        put "$(stat -c %a "$C_STAGE/$rel")" "$C_STAGE/$rel" "/$rel"
      fi
    done < <(cd "$C_STAGE" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P\n' | sort)
  fi
  if [ -e "$DESTDIR$CONFIG" ]; then
    echo "kept the existing $DESTDIR$CONFIG (the documented defaults are in config/edmmd.toml)"
  else
    directory "$(dirname "$CONFIG")"
    install -m 644 config/edmmd.toml "$DESTDIR$CONFIG"
    echo "c $(checksum "$DESTDIR$CONFIG") $CONFIG" >> "$new"
  fi
  directory "$(dirname "$MANIFEST")"
  echo "f $MANIFEST" >> "$new"
  sort -u "$new" > "$DESTDIR$MANIFEST"
  chmod 644 "$DESTDIR$MANIFEST"
  echo "installed edmmd $(cat VERSION) in ${DESTDIR:-/} (PREFIX=$PREFIX); the list of what was installed is $MANIFEST"
  if [ -z "$DESTDIR" ]; then
    echo "next: systemd-sysusers edmmd.conf && systemctl daemon-reload && systemctl enable --now edmmd.socket"
  fi
}

uninstall_tree() {
  local manifest=$DESTDIR$MANIFEST
  [ -f "$manifest" ] || { echo "uninstall: no $manifest: nothing was installed with this PREFIX and DESTDIR" >&2; exit 1; }
  local kind a b directories=()
  while read -r kind a b; do
    case $kind in
      f|l) rm -f "$DESTDIR$a" ;;
      c) if [ -f "$DESTDIR$b" ] && [ "$(checksum "$DESTDIR$b")" != "$a" ]; then
           echo "kept $DESTDIR$b: it changed since it was installed"
         else
           rm -f "$DESTDIR$b"
         fi ;;
      d) directories+=("$a") ;;
    esac
  done < "$manifest"
  # Deepest first; a directory that still holds something else stays.
  printf '%s\n' ${directories[@]+"${directories[@]}"} | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- |
    while read -r dir; do rmdir "$DESTDIR$dir" 2>/dev/null || true; done
  echo "uninstalled edmmd from ${DESTDIR:-/} (PREFIX=$PREFIX)"
}

case ${1:-} in
  install|uninstall)
    require PREFIX BINDIR SBINDIR DATADIR MANDIR SYSCONFDIR UNITDIR SYSUSERSDIR BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR
    CONFIG=$SYSCONFDIR/edmmd/edmmd.toml
    MANIFEST=$DATADIR/edmmd/install-manifest
    if [ "$1" = install ]; then install_tree "$2" "$3"; else uninstall_tree; fi ;;
  units) require SBINDIR SYSCONFDIR; units "$2" ;;
  *) echo "usage: install.sh install BIN DIST | uninstall | units DIR" >&2; exit 2 ;;
esac
