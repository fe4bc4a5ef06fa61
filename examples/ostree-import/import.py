#!/usr/bin/env python3
"""Import a container image into an ostree repository through the image-proxy wire.

    python3 examples/ostree-import/import.py --repo REPO --branch BRANCH IMAGEREF [--proxy CMD]

Every layer is fetched at once (one thread each; GetRawBlob when the proxy has it,
else GetBlob), its compressed digest and its diff_id checked while it streams,
decompressed on the fly and fed to `ostree commit --tree=tar=/dev/stdin`. A layer
whose digests match gets the ref BRANCH-layer-N; BRANCH then gets the layers
stacked in order with OCI whiteouts applied. Nothing is written to disk but the
ostree repository.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, NamedTuple, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

from decoders import Decoder, LayerImportError, TarSink, abort_decoder, decoder_for  # noqa: E402
from ostree_repo import OstreeRepo, merge_layers  # noqa: E402

from layerpipe import ImageProxy, OpenedImage, ProxyError  # noqa: E402

READ_SIZE = 1024 * 1024
# A bigger pipe lets the proxy run ahead while this side decompresses and hashes.
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
META_PREFIX = "ostree-import"


class Layer(NamedTuple):
    index: int
    digest: str
    size: int
    media_type: str
    diff_id: Optional[str]


class LayerResult(NamedTuple):
    layer: Layer
    commit: str
    seconds: float
    tar_size: int


def default_proxy() -> str:
    """layerpipe on PATH, else the bin/layerpipe of the checkout holding this file, else skopeo."""
    if shutil.which("layerpipe"):
        return "layerpipe"
    checkout = os.path.normpath(os.path.join(HERE, "..", "..", "bin", "layerpipe"))
    if os.access(checkout, os.X_OK):
        return checkout
    return "skopeo" if shutil.which("skopeo") else "layerpipe"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="ostree repository (already initialised)")
    parser.add_argument("--branch", required=True, help="ref for the merged image; layers get BRANCH-layer-N")
    parser.add_argument("imageref", help="TRANSPORT:REFERENCE, e.g. oci:/path/layout:tag or docker://host/repo:tag")
    parser.add_argument("--proxy", default=os.environ.get("LAYERPIPE_PROXY_COMMAND") or default_proxy(),
                        help="proxy command, shell-quoted (default: $LAYERPIPE_PROXY_COMMAND, layerpipe, skopeo)")
    parser.add_argument("--proxy-arg", action="append", default=[], help="extra flag for the proxy (repeatable)")
    parser.add_argument("--blob-method", choices=("auto", "raw", "verified"), default="auto",
                        help="raw: GetRawBlob (0.2.8); verified: GetBlob + FinishPipe; auto: raw when available")
    parser.add_argument("--jobs", type=int, default=0, help="layers fetched at once (default: all)")
    parser.add_argument("--ostree", default="ostree", help="ostree command")
    return parser.parse_args(argv)


def plan_layers(proxy: ImageProxy, img: OpenedImage, manifest: dict, config: dict) -> List[Layer]:
    if proxy.supports("GetLayerInfo"):
        infos = [(l["digest"], l["size"], l["media_type"]) for l in proxy.get_layer_info(img)]
    else:  # protocol 0.2.3 (skopeo 1.9): the OCI manifest says the same for non-storage transports
        infos = [(l["digest"], l["size"], l["mediaType"]) for l in manifest["layers"]]
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(infos):
        raise LayerImportError(f"config lists {len(diff_ids)} diff_ids for {len(infos)} layers")
    return [Layer(i, d, s, m, diff_ids[i]) for i, (d, s, m) in enumerate(infos)]


def open_blob(proxy: ImageProxy, img: OpenedImage, layer: Layer, use_raw: bool):
    if use_raw:
        return proxy.get_raw_blob(img, layer.digest)
    if layer.size < 0:
        raise LayerImportError(f"layer {layer.index}: GetBlob needs the size, which the image does not give")
    return proxy.get_blob(img, layer.digest, layer.size)


def grow_pipe(blob: Any) -> None:
    try:
        fcntl.fcntl(blob.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, ValueError):
        pass  # an optimisation only (pipe-max-size may be lower)


def import_layer(proxy: ImageProxy, img: OpenedImage, layer: Layer, repo: OstreeRepo,
                 branch: str, imageref: str, use_raw: bool) -> LayerResult:
    started = time.monotonic()
    metadata = {f"{META_PREFIX}.layer-digest": layer.digest, f"{META_PREFIX}.diff-id": layer.diff_id or ""}
    commit = repo.start_tar_commit(f"layer {layer.index} of {imageref}", metadata)
    sink = TarSink(commit.stdin)
    decoder: Optional[Decoder] = None
    try:
        decoder = decoder_for(layer.media_type, sink)
        blob_hash = hashlib.sha256()
        received = 0
        with open_blob(proxy, img, layer, use_raw) as blob:
            grow_pipe(blob)
            while True:
                chunk = blob.read(READ_SIZE)
                if not chunk:
                    break
                blob_hash.update(chunk)
                received += len(chunk)
                decoder.feed(chunk)
        decoder.finish()
        got = "sha256:" + blob_hash.hexdigest()
        if got != layer.digest:
            raise LayerImportError(f"digest mismatch: got {got} ({received} bytes)")
        if layer.size >= 0 and received != layer.size:
            raise LayerImportError(f"size mismatch: got {received} bytes, expected {layer.size}")
        if layer.diff_id and sink.digest != layer.diff_id:
            raise LayerImportError(f"uncompressed digest {sink.digest} is not the config's diff_id {layer.diff_id}")
        checksum = commit.finish()
    except (LayerImportError, ProxyError, OSError) as e:
        abort_decoder(decoder)
        said = commit.abort()
        detail = f"; ostree said: {said}" if said else ""
        raise LayerImportError(f"layer {layer.index} ({layer.digest}): {e}{detail}") from e
    except BaseException:
        abort_decoder(decoder)
        commit.abort()
        raise
    # Only a verified layer gets a ref; a failed one stays an orphan for `ostree prune`.
    repo.set_ref(f"{branch}-layer-{layer.index}", checksum)
    return LayerResult(layer, checksum, time.monotonic() - started, sink.size)


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    repo = OstreeRepo(args.repo, args.ostree)
    command = shlex.split(args.proxy)
    started = time.monotonic()
    with ImageProxy(command=command, args=args.proxy_arg) as proxy:
        img = proxy.open_image(args.imageref)
        manifest_digest, manifest_bytes = proxy.get_manifest(img)
        manifest = json.loads(manifest_bytes)
        config = proxy.get_full_config(img)
        layers = plan_layers(proxy, img, manifest, config)
        if args.blob_method == "raw" and not proxy.supports("GetRawBlob"):
            raise LayerImportError(f"--blob-method=raw needs protocol 0.2.8; {args.proxy} speaks {proxy.protocol_version}")
        use_raw = args.blob_method == "raw" or (args.blob_method == "auto" and proxy.supports("GetRawBlob"))
        method = "GetRawBlob" if use_raw else "GetBlob"
        total = sum(max(l.size, 0) for l in layers)
        print(f"{args.imageref}: {len(layers)} layers, {mb(total)} compressed, manifest {manifest_digest}")
        print(f"proxy: {' '.join(command)} (protocol {proxy.protocol_version}), blobs via {method}")
        metadata_done = time.monotonic()
        jobs = args.jobs or max(len(layers), 1)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="layer") as pool:
            futures = [pool.submit(import_layer, proxy, img, layer, repo, args.branch, args.imageref, use_raw)
                       for layer in layers]
            outcomes = []
            for future in futures:
                try:
                    outcomes.append(future.result())
                except LayerImportError as e:
                    outcomes.append(e)
        proxy.close_image(img)
    layers_done = time.monotonic()
    failures = [o for o in outcomes if isinstance(o, LayerImportError)]
    results = [o for o in outcomes if isinstance(o, LayerResult)]
    for r in results:
        rate = r.layer.size / r.seconds / 1e6 if r.seconds > 0 else 0.0
        print(f"  layer {r.layer.index} {r.layer.digest[:19]} {mb(r.layer.size)} -> {mb(r.tar_size)} tar "
              f"in {r.seconds:.2f} s ({rate:.0f} MB/s) commit {r.commit[:12]}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(layers)} layers failed; {args.branch} not updated", file=sys.stderr)
        return 1
    metadata = {f"{META_PREFIX}.imageref": args.imageref, f"{META_PREFIX}.manifest-digest": manifest_digest}
    final, whiteouts = merge_layers(repo, args.branch, [r.commit for r in results], f"{args.imageref}", metadata)
    finished = time.monotonic()
    print(f"metadata {metadata_done - started:.2f} s, layers {layers_done - metadata_done:.2f} s "
          f"({mb(total)} at {total / max(layers_done - metadata_done, 1e-9) / 1e6:.0f} MB/s), "
          f"merge {finished - layers_done:.2f} s ({whiteouts} whiteouts applied), total {finished - started:.2f} s")
    print(f"{args.branch} {final}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (LayerImportError, ProxyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
