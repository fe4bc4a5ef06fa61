"""The ostree side: commits fed from a tar stream, refs, and merging layer trees
with OCI whiteouts applied."""

from __future__ import annotations

import os
import posixpath
import subprocess
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from decoders import LayerImportError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def _metadata_args(metadata: Dict[str, str]) -> List[str]:
    return [f"--add-metadata-string={key}={value}" for key, value in sorted(metadata.items())]


class TarCommit:
    """`ostree commit --tree=tar=/dev/stdin` running; write the tar to `stdin`.

    The commit is an orphan: the caller names it with a ref only after checking
    the layer's digests, so a corrupted layer never gets a ref.
    """

    def __init__(self, ostree: str, repo: str, subject: str, metadata: Dict[str, str]) -> None:
        argv = [
            ostree, "commit", f"--repo={repo}", "--orphan",
            "--tree=tar=/dev/stdin", "--tar-autocreate-parents",
            f"--subject={subject}", *_metadata_args(metadata),
        ]  # fmt: skip
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._process.stdin is not None
        self.stdin = self._process.stdin
        self._output: Dict[str, bytes] = {}
        self._readers = [
            threading.Thread(target=self._collect, args=(name,), daemon=True) for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _collect(self, name: str) -> None:
        stream = getattr(self._process, name)
        self._output[name] = stream.read()
        stream.close()

    def _wait(self) -> Tuple[int, str, str]:
        try:
            self.stdin.close()
        except BrokenPipeError:
            pass
        status = self._process.wait()
        for reader in self._readers:
            reader.join()
        decode = lambda name: self._output.get(name, b"").decode(errors="replace").strip()  # noqa: E731
        return status, decode("stdout"), decode("stderr")

    def finish(self) -> str:
        """Ends the input, waits, and returns the new commit's checksum."""
        status, stdout, stderr = self._wait()
        if status != 0:
            raise LayerImportError(f"ostree commit exited with status {status}: {stderr}")
        return stdout.splitlines()[-1].strip()

    def abort(self) -> str:
        """Stops the commit; returns what ostree said, for the error message."""
        if self._process.poll() is None:
            self._process.kill()
        return self._wait()[2]


class OstreeRepo:
    def __init__(self, path: str, ostree: str = "ostree") -> None:
        self.path = path
        self.ostree = ostree
        # `ostree refs --create` lists refs/heads first and fails when another
        # process renames a temporary file there at the same moment.
        self._refs_lock = threading.Lock()

    def _run(self, *args: str, pass_fds: Sequence[int] = ()) -> str:
        result = subprocess.run(
            [self.ostree, *args, f"--repo={self.path}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(pass_fds),
        )
        if result.returncode != 0:
            raise LayerImportError(
                f"ostree {args[0]} exited with status {result.returncode}: {result.stderr.decode(errors='replace').strip()}"
            )
        return result.stdout.decode()

    def start_tar_commit(self, subject: str, metadata: Dict[str, str]) -> TarCommit:
        return TarCommit(self.ostree, self.path, subject, metadata)

    def set_ref(self, ref: str, commit: str) -> None:
        with self._refs_lock:
            self._run("refs", "--force", f"--create={ref}", commit)

    def list_paths(self, commit: str) -> List[str]:
        out = subprocess.run(
            [self.ostree, "ls", f"--repo={self.path}", "-R", "--nul-filenames-only", commit, "/"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=True,
        ).stdout
        return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]

    def commit_trees(
        self,
        trees: Sequence[str],
        skip: Iterable[str],
        subject: str,
        metadata: Dict[str, str],
        branch: Optional[str] = None,
    ) -> str:
        """Commits the overlay of `trees` (later ones win), leaving out `skip` paths."""
        args = ["commit", f"--branch={branch}" if branch else "--orphan", f"--subject={subject}"]
        args += [f"--tree=ref={tree}" for tree in trees] + _metadata_args(metadata)
        skip_text = "".join(path + "\n" for path in sorted(set(skip)))
        if not skip_text:
            return self._run(*args).strip()
        # The skip list lives in memory (memfd), so nothing but the repo is written.
        fd = os.memfd_create("ostree-skip-list")
        try:
            data = skip_text.encode("utf-8", "surrogateescape")
            while data:
                data = data[os.write(fd, data):]
            return self._run(*args, f"--skip-list=/proc/self/fd/{fd}", pass_fds=[fd]).strip()
        finally:
            os.close(fd)


def whiteouts(paths: Iterable[str]) -> Tuple[Set[str], Set[str]]:
    """The whiteout entries of a layer and the lower-layer paths they delete.

    `.wh.NAME` deletes NAME beside it; `.wh..wh..opq` in DIR deletes everything
    lower layers put in DIR (the layer's own DIR and contents stay).
    """
    entries: Set[str] = set()
    targets: Set[str] = set()
    for path in paths:
        parent, name = posixpath.split(path)
        if name == OPAQUE_MARKER:
            entries.add(path)
            targets.add(parent)
        elif name.startswith(WHITEOUT_PREFIX):
            entries.add(path)
            targets.add(posixpath.join(parent, name[len(WHITEOUT_PREFIX):]))
    return entries, targets


def _is_under(path: str, roots: Set[str]) -> bool:
    while True:
        if path in roots:
            return True
        if path in ("/", ""):
            return False
        path = posixpath.dirname(path)


def skip_list_for(present: Set[str], remove: Set[str]) -> Set[str]:
    """The paths to give ostree's --skip-list: ostree refuses entries that match
    nothing, and an entry inside a skipped directory is never reached, so only
    the outermost removed paths that exist are listed."""
    existing = remove & present
    return {p for p in existing if not _is_under(posixpath.dirname(p), existing) or p == "/"}


def merge_layers(
    repo: OstreeRepo, branch: str, layer_commits: Sequence[str], subject: str, metadata: Dict[str, str]
) -> Tuple[str, int]:
    """Commits the layers stacked in order onto `branch`; returns (checksum, whiteouts applied).

    Runs of layers without whiteouts are overlaid in one commit. Before a layer
    with whiteouts, the layers below it are committed once without the deleted
    paths (ostree's skip list applies to every tree of a commit, so deleting from
    the lower layers and adding the layer's own files take two commits).
    Whiteout entries never reach the result.
    """
    lower: List[str] = []  # commits overlaid so far, bottom first
    present: Set[str] = set()  # paths of that overlay
    applied = 0
    for commit in layer_commits:
        paths = set(repo.list_paths(commit))
        _, targets = whiteouts(paths)
        if "/" in targets:
            lower, present = [], set()  # an opaque root hides every lower layer
        elif targets and lower:
            entries, _ = whiteouts(present)
            skip = skip_list_for(present, targets | entries)
            applied += len(targets & present)
            if skip:
                lower = [repo.commit_trees(lower, skip, f"{subject} (lower layers)", metadata)]
                present = {p for p in present if not _is_under(p, skip)}
        lower.append(commit)
        present |= paths
    entries, _ = whiteouts(present)
    final = repo.commit_trees(lower, skip_list_for(present, entries), subject, metadata, branch=branch)
    return final, applied
