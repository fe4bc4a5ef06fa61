"""Streaming layer decompression into a sink, with the digest of what comes out.

gzip is decoded with zlib in this process; zstd by the `zstd` command, fed from
one thread and read from another so neither side can fill a pipe and stall.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import zlib
from typing import BinaryIO, List, Optional

# Largest piece of decompressed output produced per step (bounds memory on
# highly compressible input).
OUTPUT_STEP = 1024 * 1024


class LayerImportError(Exception):
    """A layer could not be imported; the message says which and why."""


class TarSink:
    """Receives the uncompressed tar: hashes it (for the diff_id) and forwards it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out: Optional[BinaryIO] = out
        self.hasher = hashlib.sha256()
        self.size = 0
        # ostree may stop reading (and exit) once it has seen the tar's end blocks,
        # before the record padding after them: the rest is still hashed, not sent.
        self.reader_stopped = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.hasher.update(data)
        self.size += len(data)
        if self._out is None:
            return
        try:
            self._out.write(data)
        except BrokenPipeError:
            self.reader_stopped = True
            self._out = None

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class Decoder:
    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class PlainDecoder(Decoder):
    def __init__(self, sink: TarSink) -> None:
        self._sink = sink

    def feed(self, data: bytes) -> None:
        self._sink.write(data)

    def finish(self) -> None:
        pass


class GzipDecoder(Decoder):
    """Accepts concatenated gzip members, as gzip(1) does."""

    def __init__(self, sink: TarSink) -> None:
        self._sink = sink
        self._member = zlib.decompressobj(wbits=31)
        self._member_has_input = False

    def feed(self, data: bytes) -> None:
        try:
            while data:
                self._member_has_input = True
                self._sink.write(self._member.decompress(data, OUTPUT_STEP))
                if self._member.eof:
                    data = self._member.unused_data
                    self._member = zlib.decompressobj(wbits=31)
                    self._member_has_input = False
                else:
                    data = self._member.unconsumed_tail
        except zlib.error as e:
            raise LayerImportError(f"gzip: {e}") from None

    def finish(self) -> None:
        try:
            self._sink.write(self._member.flush())
        except zlib.error as e:
            raise LayerImportError(f"gzip: {e}") from None
        if self._member_has_input and not self._member.eof:
            raise LayerImportError("gzip: stream ends in the middle of a member")


class ZstdDecoder(Decoder):
    def __init__(self, sink: TarSink) -> None:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise LayerImportError("zstd layers need the zstd command: apt-get install zstd")
        self._sink = sink
        self._process = subprocess.Popen(
            [zstd, "-d", "-c", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._errors: List[BaseException] = []
        self._stderr = b""
        self._reader = threading.Thread(target=self._pump, name="zstd-output", daemon=True)
        self._reader.start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    def _pump(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                chunk = stdout.read1(OUTPUT_STEP)
                if not chunk:
                    return
                self._sink.write(chunk)
        except BaseException as e:
            self._errors.append(e)
            self._process.kill()
        finally:
            stdout.close()

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        self._stderr = self._process.stderr.read()
        self._process.stderr.close()

    def feed(self, data: bytes) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(data)
        except BrokenPipeError:
            self._fail()

    def finish(self) -> None:
        try:
            assert self._process.stdin is not None
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        self._fail(only_if_failed=True)

    def _fail(self, only_if_failed: bool = False) -> None:
        self._reader.join()
        status = self._process.wait()
        self._stderr_reader.join()
        if self._errors:
            raise self._errors[0]
        if status != 0:
            raise LayerImportError(f"zstd exited with status {status}: {self._stderr.decode(errors='replace').strip()}")
        if not only_if_failed:
            raise LayerImportError("zstd stopped reading its input")

    def abort(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def decoder_for(media_type: str, sink: TarSink) -> Decoder:
    """OCI and Docker layer media types: ...tar, ...tar+gzip / .tar.gzip, ...tar+zstd."""
    kind = media_type.rsplit("+", 1)[1] if "+" in media_type else media_type.rsplit(".", 1)[-1]
    if kind == "gzip":
        return GzipDecoder(sink)
    if kind == "zstd":
        return ZstdDecoder(sink)
    if kind == "tar":
        return PlainDecoder(sink)
    raise LayerImportError(f"unsupported layer media type {media_type}")


def abort_decoder(decoder: Optional[Decoder]) -> None:
    if isinstance(decoder, ZstdDecoder):
        decoder.abort()

