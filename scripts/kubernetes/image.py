#!/usr/bin/python3
"""Writes a docker-archive image for the kubernetes test stage, with no registry: one layer with
Debian's static busybox and empty mount points; bin, lib, lib64 and sbin link into /usr, which
the containers bind-mount read-only from the host (so host binaries and the Swift runtime run
inside). The same image is the pause image and the app image.

  image.py OUT.tar NAME:TAG
"""
import hashlib
import io
import json
import sys
import tarfile


def layer():
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for directory in ["usr", "tmp", "proc", "sys", "dev", "etc", "run", "opt", "work", "var"]:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for link in ["bin", "lib", "lib64", "sbin"]:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
        tar.add("/bin/busybox", arcname="busybox")
    return data.getvalue()


def main(out, name):
    layer_bytes = layer()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/busybox", "sleep", "2147483647"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tar:
        for path, body in [("manifest.json", manifest), (config_name, config), ("layer/layer.tar", layer_bytes)]:
            info = tarfile.TarInfo(path)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
