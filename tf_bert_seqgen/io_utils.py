"""Writing directories and files so that readers never see half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_directory(target: str, overwrite: bool = True):
    """Yields a temporary sibling of `target`; on success it replaces `target` in one rename.

    On any exception the temporary directory is removed and `target` is left as it was. With
    `overwrite=False` an existing `target` is an error, raised before anything is written.
    """
    target = os.path.abspath(target)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; refusing to overwrite it")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        yield tmp
        if os.path.exists(target):
            if not overwrite:
                raise FileExistsError(f"{target} appeared while writing; refusing to overwrite it")
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, "previous"))
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str, encoding: str = "utf-8"):
    """Yields a text file open for writing; on success it replaces `target` in one rename.

    The file is written beside `target` (same file system) under a hidden temporary name; on any
    exception it is removed and `target` is left as it was.
    """
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        # mkstemp's file is private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
