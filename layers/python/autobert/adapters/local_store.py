"""The local bucket: a folder holding the same keys as the S3 bucket."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from autobert.ports import ObjectNotFound, ObjectStore


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temp file, fsync, then link/rename into place: a reader never sees a partial object and an
        # acknowledged write survives a crash.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if if_absent:
                try:
                    os.link(tmp, path)  # atomic create-if-absent
                except FileExistsError:
                    return False
            else:
                Path(tmp).replace(path)
            _fsync_dir(path.parent)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        root = self.root.resolve()  # keys are relative to the real root (the configured one may be relative)
        base = self._path(prefix) if prefix else root
        folder = base if prefix.endswith("/") or base.is_dir() else base.parent
        if not folder.exists():
            return []
        keys = (p.relative_to(root).as_posix() for p in folder.rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-"))
        return sorted(k for k in keys if k.startswith(prefix))

    def local_path(self, key: str) -> Path:
        return Path(self.uri(key))

    def uri(self, key: str) -> str:
        return str(self._path(key))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
