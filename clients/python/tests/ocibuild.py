"""Hand-crafted OCI image layouts for tests: gzip (or plain, or zstd) layer tars,
a config, a manifest and index.json, written with the standard library only."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER_TAR + "+gzip"
LAYER_ZSTD = LAYER_TAR + "+zstd"
REF_NAME = "org.opencontainers.image.ref.name"

# A path maps to file contents, or to DIRECTORY.
DIRECTORY = object()
Entries = Dict[str, Union[bytes, object]]


class Layer(NamedTuple):
    blob: bytes
    digest: str
    size: int
    media_type: str
    diff_id: str
    tar: bytes


class Image(NamedTuple):
    layout: str
    ref: str
    manifest: bytes
    manifest_digest: str
    config: dict
    config_bytes: bytes
    config_digest: str
    layers: List[Layer]

    @property
    def imageref(self) -> str:
        return f"oci:{self.layout}:{self.ref}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(entries: Entries) -> bytes:
    """A tar of `entries` (parents first, as image layers list them), fixed metadata."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            content = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            info.uid = info.gid = 0
            if content is DIRECTORY:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                assert isinstance(content, bytes)
                info.mode = 0o644
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def compress(tar: bytes, media_type: str) -> bytes:
    if media_type == LAYER_GZIP:
        return gzip.compress(tar, compresslevel=1, mtime=0)
    if media_type == LAYER_ZSTD:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise RuntimeError("zstd layers need the zstd command (apt-get install zstd)")
        return subprocess.run([zstd, "-q", "-c", "-1"], input=tar, stdout=subprocess.PIPE, check=True).stdout
    if media_type == LAYER_TAR:
        return tar
    raise ValueError(f"unknown layer media type {media_type}")


def make_layer(entries: Entries, media_type: str = LAYER_GZIP) -> Layer:
    tar = make_tar(entries)
    blob = compress(tar, media_type)
    return Layer(blob, sha256_digest(blob), len(blob), media_type, sha256_digest(tar), tar)


def _write_blob(layout: str, data: bytes) -> str:
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return digest


def blob_path(layout: str, digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return os.path.join(layout, "blobs", algorithm, hexpart)


def _go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def write_image(
    layout: str,
    layers: Sequence[Layer],
    ref: str = "latest",
    config_extra: Optional[dict] = None,
) -> Image:
    """Adds an image to the OCI layout at `layout` (created if needed) under `ref`."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    config = {
        "created": "2024-01-02T03:04:05Z",
        "architecture": _go_arch(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2024-01-02T03:04:05Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    config.update(config_extra or {})
    config_bytes = json.dumps(config).encode()
    config_digest = _write_blob(layout, config_bytes)
    for layer in layers:
        _write_blob(layout, layer.blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in layers],
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    manifest_digest = _write_blob(layout, manifest_bytes)
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != ref]
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "annotations": {REF_NAME: ref},
        }
    )
    with open(index_path, "w") as f:
        json.dump(index, f)
    return Image(layout, ref, manifest_bytes, manifest_digest, config, config_bytes, config_digest, list(layers))
