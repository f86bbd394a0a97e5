"""Writing a folder so that it is either complete or absent, also when several processes write it at once."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def write_file(path: str | Path, data: bytes | str) -> None:
    """Writes ``path`` so that it holds either its old content or all of ``data`` (see :func:`staged_file`)."""
    with staged_file(path) as staging:
        staging.write_bytes(data.encode() if isinstance(data, str) else data)


@contextmanager
def staged_file(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path next to ``path`` for any writer (``torch.save``, a stream of lines); when the
    block ends without error the file is flushed to disk and renamed over ``path``, else it is removed, so
    ``path`` holds either its old content or all of the new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        with open(staging, "rb") as written:
            os.fsync(written.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


@contextmanager
def staged_folder(folder: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yields an empty staging folder next to ``folder`` to write into; when the block ends without error
    the staging folder takes the place of ``folder``, else it is removed.

    Each call stages under a unique name, so two writers never delete each other's work. With ``replace``
    the last one to finish wins: the old ``folder`` is renamed aside before the new one takes its place and
    deleted after. Without it the first one wins: a ``folder`` that exists by then is kept (for work that
    gives the same result whoever does it, such as converting a checkpoint).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        yield staging
        if replace:
            replace_folder(staging, folder)
        else:
            try:
                os.replace(staging, folder)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(new: Path, folder: Path, attempts: int = 20) -> None:
    """Puts the folder ``new`` in the place of ``folder`` (which may exist), by renames.

    A directory cannot be renamed onto a non-empty one, so the old ``folder`` is first moved aside; when
    another writer puts its folder in place between the two renames, the move is tried again.
    """
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    try:
        for attempt in range(attempts):
            try:
                os.replace(folder, trash / f"{attempt}")
            except FileNotFoundError:
                pass
            try:
                os.replace(new, folder)
                return
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        raise OSError(f"Could not put {new} in place of {folder}: other writers kept replacing it")
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def exclusive_lock(path: str | Path) -> FileLock:
    """An exclusive lock on the file ``path`` for a ``with`` block; other processes wait. ``filelock`` works on
    every OS, and the operating system releases the lock with the process, so a crash never leaves it held."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)
