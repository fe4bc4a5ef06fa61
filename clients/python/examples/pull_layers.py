#!/usr/bin/env python3
"""Pulls every layer of an image into a directory over protocol 1.0 (standard library only).

    pull_layers.py [--via socketpair|stdio|unix:PATH] [--proxy-arg ARG]... REFERENCE DIR

socketpair (default) and stdio start `layerpipe` (or $LAYERPIPE, a program path) as a child;
unix:PATH talks to a running `layerpipe serve --listen unix:PATH`. Layers are fetched by
several threads at once on the one connection; each is verified by the proxy and written to
DIR/<hex digest>. Prints the manifest digest, then one line per layer.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from layerpipe import ImageProxy, connect  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--via", default="socketpair", help="socketpair, stdio or unix:PATH")
    parser.add_argument("--proxy-arg", action="append", default=[], help="a flag for the proxy (repeatable)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("reference")
    parser.add_argument("dir")
    opts = parser.parse_args()
    if opts.via.startswith("unix:"):
        proxy = connect(opts.via)
    else:
        proxy = ImageProxy([os.environ.get("LAYERPIPE", "layerpipe")], opts.proxy_arg, protocol="1.0", wire=opts.via)
        proxy.start()
    os.makedirs(opts.dir, exist_ok=True)
    with proxy:
        img = proxy.open_image(opts.reference)
        digest, _ = proxy.get_manifest(img)
        print(f"manifest {digest} via {opts.via} ({proxy.payload} payloads)")

        def fetch(layer: dict) -> str:
            path = os.path.join(opts.dir, layer["digest"].split(":", 1)[1])
            with proxy.get_blob(img, layer["digest"], layer["size"]) as src, open(path, "wb") as dst:
                while True:
                    chunk = src.read(1024 * 1024)
                    if not chunk:
                        break
                    dst.write(chunk)
            return f"{layer['digest']} {layer['size']} {layer['media_type']}"

        with ThreadPoolExecutor(max_workers=opts.threads) as pool:
            for line in pool.map(fetch, proxy.get_layer_info(img)):
                print(line)
        proxy.close_image(img)
    return 0


if __name__ == "__main__":
    sys.exit(main())
