#!/usr/bin/python3
"""The kubernetes test stage (scripts/test-kubernetes.sh runs it in its venv): edmmd in
Kubernetes mode beside a private containerd (Debian's 1.6 and runc) whose NRI v0.1 hook is
`edmmctl nri-hook`, with pod sandboxes and containers created through the CRI API as a kubelet
would. Prints one line per check and `N passed, N failed`; cleans up every process, cgroup and
NRI file it made, also on failure.

  stage.py BUILD_DIR WORK_DIR
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as rpc

IMAGE = "edmm.test/base:1"
NRI_CONF = "/etc/nri/conf.json"
NRI_BIN = "/opt/nri/bin"
HOOK = "edmm-epc"
NODE = pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)

passed, failed = [], []


def check(name, ok, detail=""):
    (passed if ok else failed).append(name)
    print(f"{'ok  ' if ok else 'FAIL'}  {name}" + ("" if ok or not detail else f": {detail}"), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, seconds=20):
    deadline = time.time() + seconds
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError(f"{path} did not appear within {seconds} s")
        time.sleep(0.1)


class Stage:
    def __init__(self, build, work):
        self.build, self.work = os.path.abspath(build), os.path.abspath(work)
        self.run_dir = f"{self.work}/run"  # edmmd's socket, mounted into the pods
        self.socket = f"{self.run_dir}/control.sock"
        self.processes = []
        self.pods = []
        self.created_nri = []
        self.metrics_port = free_port()

    # --- Setup

    def start_edmmd(self):
        os.makedirs(self.run_dir, exist_ok=True)
        config = f"{self.work}/edmmd.toml"
        with open(config, "w") as f:
            f.write(f'[daemon]\nsocket_mode = 0o666\n[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n'
                    '[kubernetes]\nenabled = true\n')
        log = open(f"{self.work}/edmmd.log", "w")
        self.processes.append(subprocess.Popen(
            [f"{self.build}/edmmd", "--simulate", "--socket", self.socket, "--config", config, "--epc-size", "256MiB"],
            stdout=log, stderr=subprocess.STDOUT))
        wait_for(self.socket)

    def start_containerd(self):
        w = self.work
        for d in ["root", "state", "cni/bin", "cni/conf"]:
            os.makedirs(f"{w}/{d}", exist_ok=True)
        with open(f"{w}/containerd.toml", "w") as f:
            f.write(f"""version = 2
root = "{w}/root"
state = "{w}/state"
[grpc]
  address = "{w}/containerd.sock"
[ttrpc]
  address = "{w}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  stream_server_address = "127.0.0.1"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["sgx.intel.com/*", "epc-limit.nri.io/*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{w}/cni/bin"
    conf_dir = "{w}/cni/conf"
""")
        log = open(f"{w}/containerd.log", "w")
        self.processes.append(subprocess.Popen(["containerd", "--config", f"{w}/containerd.toml"], stdout=log, stderr=subprocess.STDOUT))
        wait_for(f"{w}/containerd.sock")
        tar = f"{w}/base.tar"
        subprocess.run([sys.executable, os.path.dirname(os.path.abspath(__file__)) + "/image.py", tar, IMAGE], check=True)
        subprocess.run(["ctr", "-a", f"{w}/containerd.sock", "-n", "k8s.io", "images", "import", tar],
                       check=True, stdout=subprocess.DEVNULL)
        self.cri = rpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{w}/containerd.sock"))

    def register_hook(self):
        """The NRI v0.1 hook: containerd 1.6 reads these fixed paths; they are removed at the end."""
        if os.path.exists(NRI_CONF):
            raise RuntimeError(f"{NRI_CONF} exists: this stage will not replace another NRI configuration")
        for d in ["/etc/nri", os.path.dirname(NRI_BIN), NRI_BIN]:
            if not os.path.isdir(d):
                os.mkdir(d)
                self.created_nri.append(d)
        with open(f"{NRI_BIN}/{HOOK}", "w") as f:
            f.write(f'#!/bin/sh\nexec {self.build}/edmmctl nri-hook "$@" 2>>{self.work}/nri-hook.log\n')
        os.chmod(f"{NRI_BIN}/{HOOK}", 0o755)
        with open(NRI_CONF, "w") as f:
            json.dump({"version": "0.1", "plugins": [{"type": HOOK, "conf": {"socket": self.socket}}]}, f)
        self.created_nri += [f"{NRI_BIN}/{HOOK}", NRI_CONF]

    # --- Pods

    def run_pod(self, name, annotations, command):
        uid = str(uuid.uuid4())
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0), annotations=annotations,
            log_directory=f"{self.work}/logs/{name}",
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"/kubepods/burstable/pod{uid}",
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=NODE)))
        sandbox = self.cri.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.pods.append((sandbox, uid))
        mounts = [pb.Mount(container_path=p, host_path=p, readonly=True) for p in ["/usr", "/opt/swift", self.build]]
        mounts.append(pb.Mount(container_path="/run/edmmd", host_path=self.run_dir))
        container = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=IMAGE), command=command, mounts=mounts,
            stdin=True, envs=[pb.KeyValue(key="EDMMD_SOCKET", value="/run/edmmd/control.sock")],
            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=NODE)))
        cid = self.cri.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=container, sandbox_config=config)).container_id
        self.cri.StartContainer(pb.StartContainerRequest(container_id=cid))
        return {"sandbox": sandbox, "uid": uid, "container": cid, "name": name}

    def exec(self, pod, command, timeout=60):
        reply = self.cri.ExecSync(pb.ExecSyncRequest(container_id=pod["container"], cmd=command, timeout=timeout))
        return reply.exit_code, reply.stdout.decode(), reply.stderr.decode()

    def remove_pod(self, pod):
        self.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod["sandbox"]))
        self.cri.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod["sandbox"]))
        self.pods = [p for p in self.pods if p[0] != pod["sandbox"]]

    # --- Host side

    def ctl(self, *args):
        out = subprocess.run([f"{self.build}/edmmctl", "--socket", self.socket, *args, "--json"], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr}

    def scrape(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    # --- Cleanup

    def cleanup(self):
        for sandbox, _ in list(self.pods):
            try:
                self.cri.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox), timeout=30)
                self.cri.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox), timeout=30)
            except Exception as error:  # noqa: BLE001 - cleanup goes on
                print(f"cleanup: pod {sandbox[:12]}: {error}")
        for process in reversed(self.processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for path in reversed(self.created_nri):
            if os.path.isdir(path):
                os.rmdir(path)
            elif os.path.exists(path):
                os.remove(path)
        # The pod cgroups the runtime made under the kubelet's (absent) hierarchy, deepest first.
        for root, dirs, _ in os.walk("/sys/fs/cgroup", topdown=False):
            if "/kubepods" in root:
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        subprocess.run(["umount", "-R", f"{self.work}/state"], stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", f"{self.work}/root"], stderr=subprocess.DEVNULL)


def checks(stage):
    hold = f"{stage.build}/edmm-sim"
    # Pod A: 64Mi from Intel's webhook annotation; its app holds an enclave for the visibility checks.
    a = stage.run_pod("pod-a", {"sgx.intel.com/epc": "64Mi"}, [hold, "hold", "--pages", "16", "--label", "held-a"])
    b = stage.run_pod("pod-b", {}, ["/busybox", "sleep", "2147483647"])
    time.sleep(1)
    scopes = stage.ctl("scopes").get("scopes", [])
    pod_a = [s for s in scopes if s["pod_uid"] == a["uid"] and s["container_id"] is None]
    check("the hook registered pod-a with the 64Mi of sgx.intel.com/epc",
          len(pod_a) == 1 and pod_a[0]["quota_pages"] == 16384 and pod_a[0]["pod"] == "pod-a", json.dumps(scopes)[:400])
    enclaves = stage.ctl("enclaves").get("enclaves", [])
    held = [e for e in enclaves if e["label"] == "held-a"]
    check("the host sees pod-a's enclave with its namespace, pod and container",
          len(held) == 1 and held[0]["namespace"] == "default" and held[0]["pod"] == "pod-a" and held[0]["container"] == "app",
          json.dumps(enclaves)[:400])

    # Pod C: 64Mi and nothing else running: exactly the quota, and refused one page beyond it.
    c = stage.run_pod("pod-c", {"sgx.intel.com/epc": "64Mi"}, ["/busybox", "sleep", "2147483647"])
    status, out, err = stage.exec(c, ["/busybox", "sh", "-c", f"{hold} hold --pages 16384 --label fill </dev/null"])
    check("pod-c commits exactly its 64Mi quota", status == 0 and '"ready"' in out, (out + err)[-300:])
    status, out, err = stage.exec(c, ["/busybox", "sh", "-c", f"{hold} hold --pages 16385 --label over </dev/null"])
    check("pod-c is refused one page beyond it", status != 0 and "quota" in (out + err), (out + err)[-300:])

    # Pod D: a container's own limit wins over the pod's total.
    d = stage.run_pod("pod-d", {"sgx.intel.com/epc": "64Mi", "epc-limit.nri.io/container.app": "4194304"},
                      ["/busybox", "sleep", "2147483647"])
    status, out, err = stage.exec(d, ["/busybox", "sh", "-c", f"{hold} hold --pages 1024 --label small </dev/null"])
    check("pod-d's container commits its own 4 MiB", status == 0 and '"ready"' in out, (out + err)[-300:])
    status, out, err = stage.exec(d, ["/busybox", "sh", "-c", f"{hold} hold --pages 1025 --label big </dev/null"])
    check("pod-d's container limit wins over the pod's 64Mi", status != 0 and "container quota" in (out + err), (out + err)[-300:])

    # Pod B: no annotation, so the fail-closed default; it sees nothing of pod A.
    status, out, err = stage.exec(b, ["/busybox", "sh", "-c", f"{hold} hold --pages 16 --label b </dev/null"])
    check("pod-b without an EPC annotation commits nothing (fail closed)", status != 0 and "quota" in (out + err), (out + err)[-300:])
    status, out, _ = stage.exec(b, [f"{stage.build}/edmmctl", "enclaves", "--json"])
    check("pod-b's ENCLAVES does not list pod-a's enclave", status == 0 and json.loads(out)["enclaves"] == [], out[:300])
    status, out, _ = stage.exec(b, [f"{stage.build}/edmmctl", "metrics"])
    check("pod-b's METRICS has no series of pod-a", status == 0 and "pod-a" not in out and "held-a" not in out, out[:200])
    handle = held[0]["id"] if held else 0
    status, out, err = stage.exec(b, [f"{stage.build}/edmmctl", "show", str(handle), "--json"])
    # Either answer keeps pod-a's enclave hidden: refused as another pod's, or not even found.
    check("pod-b cannot look at pod-a's enclave", status != 0 and ("belongs to pod" in out + err or "unknown-enclave" in out + err),
          (out + err)[-300:])

    # /metrics carries the pod labels and passes promtool.
    text = stage.scrape()
    labelled = 'edmmd_container_enclaves{namespace="default",pod="pod-a",container="app"} 1' in text
    check("/metrics has pod-a's container series", labelled, "")
    promtool = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check("promtool check metrics passes", promtool.returncode == 0, promtool.stderr[-300:] + promtool.stdout[-300:])

    # Host clients are unaffected: unlimited, as without Kubernetes mode.
    host = subprocess.run([hold, "hold", "--socket", stage.socket, "--pages", "20000", "--label", "host"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    check("a host client is not bound by any pod's quota", host.returncode == 0 and '"ready"' in host.stdout, host.stderr[-300:])

    # Deleting pod A drops its scope and, its holder gone, its enclave.
    stage.remove_pod(a)
    time.sleep(1)
    scopes = stage.ctl("scopes").get("scopes", [])
    enclaves = stage.ctl("enclaves").get("enclaves", [])
    check("deleting pod-a drops its scopes", not [s for s in scopes if s["pod_uid"] == a["uid"]], json.dumps(scopes)[:300])
    check("deleting pod-a unregisters its enclave", not [e for e in enclaves if e["label"] == "held-a"], json.dumps(enclaves)[:300])


def main(build, work):
    stage = Stage(build, work)
    try:
        stage.start_edmmd()
        stage.register_hook()
        stage.start_containerd()
        checks(stage)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        check("the stage ran to its end", False, f"{type(error).__name__}: {error}")
    finally:
        stage.cleanup()
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
