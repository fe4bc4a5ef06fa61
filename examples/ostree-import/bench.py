#!/usr/bin/env python3
"""Time import.py on an image of incompressible layers, once per proxy command.

    python3 examples/ostree-import/bench.py --proxy skopeo --proxy layerpipe

Builds a LAYERS x MIB MiB OCI layout (random bytes, gzip level 1) in a temporary
directory, imports it RUNS times per proxy into a fresh bare-user repository,
and prints the best and median wall time of the whole import.py run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python", "tests"))

import ocibuild  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", action="append", required=True, help="proxy command (repeatable)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--mib", type=int, default=32, help="size of each layer's file in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--blob-method", default="auto", choices=("auto", "raw", "verified"))
    parser.add_argument("--repo-mode", default="bare-user", help="ostree init --mode")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="ostree-import-bench-")
    try:
        started = time.monotonic()
        layers = [
            ocibuild.make_layer({f"layer{i}": ocibuild.DIRECTORY, f"layer{i}/random.bin": os.urandom(args.mib << 20)})
            for i in range(args.layers)
        ]
        image = ocibuild.write_image(os.path.join(root, "layout"), layers)
        total = sum(layer.size for layer in layers)
        print(f"image: {args.layers} x {args.mib} MiB, {total / 1e6:.1f} MB compressed, "
              f"built in {time.monotonic() - started:.1f} s")
        for proxy in args.proxy:
            times = []
            for run in range(args.runs):
                repo = os.path.join(root, f"repo-{run}")
                shutil.rmtree(repo, ignore_errors=True)
                subprocess.run(["ostree", "init", f"--repo={repo}", f"--mode={args.repo_mode}"], check=True)
                t0 = time.monotonic()
                result = subprocess.run(
                    [sys.executable, os.path.join(HERE, "import.py"), "--repo", repo, "--branch", "bench",
                     image.imageref, "--proxy", proxy, f"--blob-method={args.blob_method}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                elapsed = time.monotonic() - t0
                if result.returncode != 0:
                    print(f"{proxy}: import failed:\n{result.stderr}", file=sys.stderr)
                    return 1
                times.append(elapsed)
                summary = [line for line in result.stdout.splitlines() if line.startswith(("proxy:", "metadata"))]
                print(f"  {proxy} run {run + 1}: {elapsed:.2f} s | " + " | ".join(summary))
                shutil.rmtree(repo, ignore_errors=True)
            print(f"{proxy}: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
                  f"({total / min(times) / 1e6:.0f} MB/s best)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
