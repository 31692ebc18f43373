"""Atomic writes of export artifacts: write beside the target, then rename."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


def check_target(path: str | os.PathLike, overwrite: bool) -> None:
    """Raises FileExistsError if `path` exists and may not be replaced."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass `overwrite=True` to replace it, or export "
            "to a new path (for TF Serving, a new version directory)."
        )


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary directory beside `path` that becomes `path` on success.

    The temporary name starts with "." and is not an integer, so TF Serving,
    which polls `models/NAME/` for integer version directories, never loads a
    half-written export. On error the temporary directory is removed and
    `path` is left as it was. With `overwrite=True` an existing `path` is
    moved aside, replaced, then deleted.
    """
    path = os.path.abspath(os.fspath(path))
    check_target(path, overwrite)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
    try:
        yield temporary
        check_target(path, overwrite)
        old = None
        if os.path.lexists(path):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{name}.old-")
            os.replace(path, os.path.join(old, name))
        os.replace(temporary, path)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, content: bytes, overwrite: bool = True) -> None:
    """Writes `content` to a temporary file beside `path`, then renames it."""
    path = os.path.abspath(os.fspath(path))
    check_target(path, overwrite)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=parent, prefix=f".{name}.tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
