"""Write-then-rename helpers: a reader never sees a half-written output file."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The temporary sibling a file is written to before it is renamed into place."""
    path = Path(path)
    # Keep the extensions last: writers such as nibabel and Keras pick the format from them.
    base, dot, ext = path.name.partition(".")
    return path.with_name(f".{base}.tmp-{os.getpid()}{dot}{ext}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text: str) -> None:
    """Write a text file through a temporary name."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json_atomic(path, obj) -> None:
    """Write JSON (indented, keys in insertion order) through a temporary name."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def remove_stale_temporaries(folder) -> int:
    """Delete temporaries left by a killed process in `folder` (recursively); return how many."""
    count = 0
    for p in Path(folder).rglob(".*.tmp-*"):
        if p.is_file():
            p.unlink()
            count += 1
    return count
