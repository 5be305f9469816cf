"""Batch checksums: sha256 over the content of the files and the options that read them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

# Reads of 1 MB, like the COPY's: a larger block only raises the loader's peak memory (8 MB
# blocks made it grow with the file up to 8 MB) and hashes no faster.
BLOCK = 1 << 20


def content_checksum(files: Iterable[Path], root: Path | None = None, options: str = "") -> str:
    """sha256 of each file's (relative) name and bytes, in the order given, plus the options.

    Two loads of the same content read the same way get the same checksum, wherever the
    files live; a changed byte or a changed reading option gives a new one.
    """
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(root).as_posix() if root is not None else path.name
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                digest.update(block)
        digest.update(b"\0")
    digest.update(options.encode())
    return digest.hexdigest()
