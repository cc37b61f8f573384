"""Atomic file writes: a reader never sees half a file, and a failed write leaves none.

The text goes to `<name>.tmp` beside the target and is renamed over it (`os.replace` is atomic
on one filesystem). Every file recipe-opt writes for users goes through here, except
`Recipe.save`, which lives on the bottom floor (`recipe` imports nothing of ours) and does the
same two steps itself.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["unwritable", "write_atomic"]


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write `data` to `path` via `<path>.tmp` and a rename; the parent directory is created."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def unwritable(directory: str | Path) -> str | None:
    """Why files cannot be written to `directory` (created when needed), or None if they can.

    Checked without creating anything that stays: the nearest existing ancestor must be a
    directory a file can be created in (probed with a temporary file, removed at once), which
    also catches a read-only filesystem that permission bits would not show.
    """
    import os
    import tempfile

    path = Path(directory).resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".recipe-opt-probe-")
    except OSError as exc:
        return f"{existing}: {(exc.strerror or str(exc)).lower()}"
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return None
