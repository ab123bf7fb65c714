"""Atomic writes: a file or folder appears whole at its final path, or not at all."""

import contextlib
import os
import shutil
import tempfile


def _parent(path):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return parent


def _default_mode(mode):
    """`mode` less the process umask: what `open`/`mkdir` would give (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def write_bytes(path, data):
    """Writes `data` to `path` through a temporary file in the same folder and `os.replace`."""
    path = os.fspath(path)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path`: it replaces `path` on success, goes on failure."""
    path = os.fspath(path)
    parent = _parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o666))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path):
    """Yields a temporary folder beside `path`; on success it takes the place of `path` (a folder
    already there is replaced only once the new one is complete), on failure it is removed."""
    path = os.fspath(path).rstrip(os.sep) or os.sep
    parent = _parent(path)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    old = None
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and os.path.exists(old):
            shutil.rmtree(old, ignore_errors=True)
