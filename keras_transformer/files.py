"""Atomic writes: write to a temporary name beside the target, then rename.

A reader (a resumed run, `Translator`, TF Serving polling `models/NAME/`)
sees the old target or the complete new one, never a half-written file,
even after a SIGKILL: the rename is atomic within one directory. Temporary
names start with "." (and are not integers, which TF Serving would load as
versions); on error the temporary file or directory is removed and the
target is left as it was. A kill may leave a temporary behind; nothing
reads it.

Data, translation and export all write through here, so this module
imports nothing from the rest of the package.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


def check_target(path: str | os.PathLike, overwrite: bool) -> None:
    """Raises FileExistsError if `path` exists and may not be replaced."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass `overwrite=True` to replace it, or write "
            "to a new path (for TF Serving, a new version directory)."
        )


def _beside(path: str | os.PathLike, overwrite: bool) -> tuple[str, str, str]:
    """`(path, parent, name)` of an absolute target whose parent exists."""
    path = os.path.abspath(os.fspath(path))
    check_target(path, overwrite)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    return path, parent, name


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """Yields a temporary file path beside `path` that replaces `path` on success.

    For writers that take a path, such as `model.save`: the temporary name
    ends with the target's name, so extension checks (".keras",
    ".weights.h5") pass. The file is readable by everyone (0o644), as a
    plain `open` would make it.

    Example:
    >>> with atomic_file("runs/fr-en/model.keras") as temporary:  # doctest: +SKIP
    ...     model.save(temporary)
    """
    path, parent, name = _beside(path, overwrite)
    handle, temporary = tempfile.mkstemp(dir=parent, prefix=".tmp-", suffix=f"-{name}")
    os.close(handle)
    try:
        yield temporary
        check_target(path, overwrite)
        os.chmod(temporary, 0o644)  # mkstemp makes it readable by its owner only
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_file_atomic(
    path: str | os.PathLike, content: bytes | str, overwrite: bool = True
) -> None:
    """Writes bytes, or text as UTF-8, to `path` through `atomic_file`."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    with atomic_file(path, overwrite) as temporary:
        with open(temporary, "wb") as file:
            file.write(content)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary directory beside `path` that becomes `path` on success.

    With `overwrite=True` an existing `path` is moved aside, replaced, then
    deleted.

    Example:
    >>> with atomic_directory("models/translator/1") as temporary:  # doctest: +SKIP
    ...     tf.saved_model.save(module, temporary)
    """
    path, parent, name = _beside(path, overwrite)
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
