#!/bin/bash
# The kubernetes stage: edmmd in Kubernetes mode with real containers (docs/kubernetes.md,
# "Testing"). A private containerd (Debian's 1.6, runc) with its own root, state, socket and
# config runs pod sandboxes and containers that a CRI client from PyPI creates as a kubelet
# would; its NRI v0.1 hook is `edmmctl nri-hook`; edmmd's socket and the build are bind-mounted
# into the pods. Checks quotas from the pod's annotations, isolation between pods, host clients,
# pod deletion and the labelled /metrics (scripts/kubernetes/stage.py). Needs root (it skips,
# saying so, without), containerd, runc, busybox-static and promtool (scripts/install-deps.sh
# test), and PyPI for the CRI client (a venv in .build/k8s-venv, made once).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: the kubernetes stage runs containers and needs root"
  exit 0
fi
for tool in containerd runc ctr promtool; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/install-deps.sh test"; exit 1; }
done
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' \
  || { echo "a static /bin/busybox is missing: apt-get install busybox-static"; exit 1; }
build=.build/debug
for product in edmmd edmmctl edmm-sim; do
  [ -x "$build/$product" ] || { echo "$build/$product is missing: swift build first"; exit 1; }
done

venv=.build/k8s-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import cri_api.v1.api_pb2_grpc' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'container-runtime-interface-api==2.0.1'
fi

work=$(mktemp -d /tmp/edmm-k8s-XXXXXX)
status=0
"$venv/bin/python" scripts/kubernetes/stage.py "$build" "$work" || status=$?
if [ "$status" -ne 0 ]; then
  for log in edmmd.log containerd.log nri-hook.log; do
    [ -s "$work/$log" ] && { echo "--- $log (last lines)"; tail -15 "$work/$log"; }
  done
fi
rm -rf "$work" 2>/dev/null || echo "note: $work could not be removed entirely (a mount left by containerd)"
exit "$status"
