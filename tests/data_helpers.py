"""Small dataset files for the data pipeline's tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz at ``path`` holding ``members`` (archive name -> bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
