"""The one guarded write path: every output of every command goes through it.

    with claim(out, kind="directory", inputs=[store], overwrite=overwrite) as output:
        result = compute()                      # after the checks, under the lock
        with output.atomic() as scratch:        # a temporary sibling of ``out``
            result.to_zarr(scratch)             # renamed onto ``out`` only on success

What ``claim`` guarantees, in order:

1. **Checked first**, before any work: the directory of ``out`` exists and is writable,
   ``out`` is of the right kind (a file, or a directory such as a Zarr store), it is not
   an input of the same command (nor inside one, nor around one), and it exists only if
   the caller may replace it (``overwrite``) or continue it (``resumable``).
2. **Locked** for the whole command: an exclusive ``flock`` (``filelock``) on the sibling
   ``.NAME.lock``. A second writer fails at once with a message naming the holder (its
   process id, host, command and start time). The kernel drops the lock of a process that
   dies, so a killed run never leaves a stale lock; the file is removed on release.
3. **Atomic**: data go to a temporary sibling ``.NAME.partial-XXXX`` that is renamed onto
   ``out`` when complete. An existing directory is first moved aside (``.NAME.replaced-
   XXXX``) and removed after the rename; a file is replaced in one rename.
4. **Room checked**: :meth:`Output.require` refuses, before any work, an output of a known
   size where the disk has less free; a write that fails on a (nearly) full disk, in
   whatever words a library uses ("NetCDF: HDF error"), is reported as no space left.
5. **Cleaned up**: on any failure the temporary is removed and the error names ``out``,
   never a temporary name. Temporaries left by killed runs are removed by the next claim
   (under the lock, so they cannot belong to a live writer); a directory moved aside by a
   run killed mid-replacement is put back if nothing replaced it.

Files are created readable by others (``0o666`` less the umask, 0644 by default), as a
report, a store or a checkpoint is meant to be shared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import filelock

from pde.io.errors import OutputError

__all__ = ["Output", "OutputError", "claim", "holder"]

Kind = Literal["file", "directory"]
_PARTIAL = ".partial-"
_REPLACED = ".replaced-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _describe_self() -> dict[str, object]:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def holder(path: str | os.PathLike) -> str:
    """Who holds the lock of output ``path``, in words (from its lock file)."""
    try:
        info = json.loads(_lock_path(Path(path)).read_text()[:4096])
        return (f"process {info['pid']} on {info['host']} since {info['since']} "
                f"(`{info['command']}`)")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _relation(out: Path, source: Path) -> str | None:
    """How ``out`` would clobber ``source``, if it would."""
    if out == source:
        return "is"
    if out in source.parents:
        return "contains"
    if source in out.parents:
        return "lies inside"
    return None


class Output:
    """A checked, locked output path; write it with :meth:`atomic`."""

    def __init__(self, path: Path, kind: Kind) -> None:
        self.path = path
        self.kind = kind

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Path]:
        """A temporary path to write the whole output to; renamed onto ``path`` on success.

        For a directory output the yielded path does not exist yet (``to_zarr`` creates it).
        """
        parent = self.path.parent
        try:
            if self.kind == "file":
                handle, name = tempfile.mkstemp(prefix=f".{self.path.name}{_PARTIAL}",
                                                dir=parent)
                os.close(handle)
                scratch = box = Path(name)
            else:
                box = Path(tempfile.mkdtemp(prefix=f".{self.path.name}{_PARTIAL}", dir=parent))
                scratch = box / self.path.name
        except OSError as error:
            raise self.failed(error) from None
        try:
            yield scratch
            self._commit(scratch)
        except OutputError:
            raise
        except OSError as error:
            raise self.failed(error) from None
        except RuntimeError:  # a library's own words for a failed write ("NetCDF: HDF error")
            if _free(parent) < _FULL:  # measured before the temporary is removed
                raise self.failed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
            raise
        finally:
            _remove(box)

    def require(self, size: int, *, what: str = "it") -> None:
        """Refuse, before any work, to write about ``size`` bytes where less is free."""
        free = _free(self.path.parent)
        if free < size + _FULL:
            raise OutputError(f"cannot write '{self.path}': {_bytes(free)} free in "
                              f"'{self.path.parent}', {what} needs about {_bytes(size)}; free "
                              "some space or choose another output")

    def failed(self, error: BaseException) -> OutputError:
        """An error naming the real output for a failure while writing it."""
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return OutputError(f"cannot write '{self.path}': {reason}; nothing was changed there")

    def _commit(self, scratch: Path) -> None:
        if self.kind == "file":
            os.chmod(scratch, 0o666 & ~_UMASK)
            with open(scratch, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(scratch, self.path)
            return
        os.chmod(scratch, 0o777 & ~_UMASK)
        if not self.path.exists():
            os.replace(scratch, self.path)
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{self.path.name}{_REPLACED}",
                                      dir=self.path.parent))
        try:
            os.replace(self.path, aside / self.path.name)
            try:
                os.replace(scratch, self.path)
            except BaseException:
                os.replace(aside / self.path.name, self.path)  # the old output back
                raise
        finally:
            _remove(aside)


_FULL = 1 << 20  # less free than this, and a failed write is put down to a full disk


def _free(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 1 << 62  # unknown: assume room, the write itself will tell


def _bytes(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _clean_stale(path: Path) -> None:
    """Remove temporaries of killed runs; restore a directory a killed run moved aside."""
    for leftover in path.parent.glob(f".{path.name}{_REPLACED}*"):
        moved = leftover / path.name
        if moved.exists() and not path.exists():
            os.replace(moved, path)
        _remove(leftover)
    for leftover in path.parent.glob(f".{path.name}{_PARTIAL}*"):
        _remove(leftover)


def _check(path: Path, kind: Kind, inputs: Iterable[str | os.PathLike], overwrite: bool,
           resumable: bool, option: str) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write '{path}': directory '{parent}' does not exist")
    if kind == "file" and path.is_dir():
        raise OutputError(f"cannot write '{path}': it is a directory, expected a file path")
    if kind == "directory" and path.exists() and not path.is_dir():
        raise OutputError(f"cannot write '{path}': it is a file, expected a directory "
                          "(a Zarr store) path")
    for source in inputs:
        relation = _relation(path.resolve(), Path(source).resolve())
        if relation:
            what = "" if relation == "is" else f" {relation} '{source}', which"
            raise OutputError(f"{option} '{path}'{what} is an input of this command; "
                              f"writing it would destroy that input: choose another {option}")
    exists = path.exists() and (kind == "file" or any(path.iterdir()))
    if exists and not (overwrite or resumable):
        raise OutputError(f"'{path}' exists; pass --overwrite to replace it")


@contextlib.contextmanager
def claim(path: str | os.PathLike, *, kind: Kind, inputs: Iterable[str | os.PathLike] = (),
          overwrite: bool = False, resumable: bool = False,
          option: str = "--out") -> Iterator[Output]:
    """Check and lock the output ``path`` for the duration of the block (see module doc).

    ``kind`` is ``"file"`` or ``"directory"``; ``inputs`` are the command's inputs, which
    the output must not destroy; ``overwrite`` allows replacing an existing output;
    ``resumable`` allows an existing one that the caller will continue (a store being
    simulated, a checkpoint being trained). ``option`` names the path in messages.
    """
    path = Path(path)
    inputs = list(inputs)
    _check(path, kind, inputs, overwrite, resumable, option)
    mine = _describe_self()

    def stamp(descriptor: int) -> None:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps(mine).encode())

    lock_file = _lock_path(path)
    lock = filelock.FileLock(lock_file, timeout=0, on_acquired=stamp)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputError(f"'{path}' is being written by {holder(path)}; wait for it to "
                          "finish or choose another output") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise OutputError(f"cannot write '{path}': directory '{path.parent}' is not "
                          f"writable ({reason})") from None
    try:
        _check(path, kind, inputs, overwrite, resumable, option)  # again, now under the lock
        _clean_stale(path)
        yield Output(path, kind)
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock_file.unlink()  # while still held: a waiter re-opens a fresh file
        lock.release()
