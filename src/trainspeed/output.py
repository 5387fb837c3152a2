"""The output folder: checked before any work, owned by one run at a time, written atomically.

Two runs writing into one folder would each rewrite results.json from their own cases, and the
last writer would erase the other's measurements; so a run holds an exclusive lock on its folder
(filelock: the lock is released by the operating system if the process dies, so a killed run never
leaves a stale lock behind). Every file is written to a temporary file beside it and renamed into
place, so a full disk or a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import ConfigError, ResultsError

LOCK_FILE = ".trainspeed.lock"


def write_error(path: Path, error: OSError, *, resume: bool = False, folder: bool = False) -> ResultsError:
    """A one-line message for a failed write (of a file, or of anything into a folder), with the
    advice that fits its cause."""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free space on that disk" + (f" and run `trainspeed run --resume {path.parent}`" if resume else "")
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "choose a folder you can write to with --out"
    elif error.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        advice = "a file is in the way there: choose another --out"
    else:
        advice = "check the disk and the folder"
    return ResultsError(f"cannot write {'into ' if folder else ''}{path} ({reason}): {advice}")


def link_problem(path: Path) -> str | None:
    """Why a symbolic link leads nowhere (Path.exists() only says False), or None."""
    if not path.is_symlink() or path.exists():
        return None
    try:
        path.resolve(strict=True)
    except (RuntimeError, OSError) as error:  # Python before 3.13 raises RuntimeError for a loop
        if isinstance(error, RuntimeError) or error.errno == errno.ELOOP:
            return f"{path} is a symbolic link that loops back on itself"
    return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot hold output, or None; nothing is created."""
    problem = link_problem(folder)
    if problem:
        return problem
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    return None


def prepare_folder(folder: str | Path | None, flag: str = "--out") -> Path:
    """The folder, created and proven writable, before any work is done that it would hold."""
    if folder is None or not str(folder).strip():
        raise ConfigError(f"{flag} needs a folder name, e.g. {flag} trainspeed-results")
    folder = Path(folder).expanduser()
    problem = folder_problem(folder)
    if problem:
        raise ConfigError(f"{flag} {problem}; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Permission bits are not the whole story (read-only mounts, root squash): try it.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise write_error(folder, error, folder=True) from None
    return folder


@contextmanager
def claimed(folder: str | Path | None) -> Iterator[Path]:
    """The output folder, held by this run alone until the block ends."""
    folder = prepare_folder(folder)
    lock = FileLock(folder / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ResultsError(f"another trainspeed run is writing to {folder}; wait for it to finish, "
                           "or give this run its own --out") from None
    try:
        yield folder
    finally:
        lock.release()


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write `path` through; renamed onto it only when the block succeeds."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(descriptor)
    try:
        yield Path(temporary)
        # mkstemp makes the file private; results and reports are meant to be shared.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, content: str | bytes) -> Path:
    with replacing(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(content.encode() if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
