"""Fetching data files: cache directory, checksums, resumable downloads with a progress bar."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..errors import ChecksumError, DataError, DownloadError
from ..output import link_problem

CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """Where downloads live: $TRAINSPEED_DATA, else the platform's user cache directory."""
    override = os.environ.get("TRAINSPEED_DATA")
    if override:
        path = Path(override).expanduser()
        problem = link_problem(path) or (f"{path} is a file" if path.exists() and not path.is_dir() else None)
        if problem:
            raise DataError(f"TRAINSPEED_DATA: {problem}, not a folder; point it at a folder for downloaded data")
        return path
    import platformdirs  # only needed when no override is given

    return Path(platformdirs.user_cache_dir("trainspeed"))


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), transient=False,
    )


def download(
    urls: str | Sequence[str],
    dest: Path,
    md5: str,
    *,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
) -> Path:
    """Fetch dest from the first mirror that answers, resuming a partial file, checking md5.

    A file that fails its checksum is deleted, never used. A transfer cut short leaves its
    `.part` file so that the next attempt resumes where it stopped.
    """
    mirrors = [urls] if isinstance(urls, str) else list(urls)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # Nothing can be fetched then: `auto` falls back to generated data, as when offline.
        reason = f"cannot create {dest.parent} ({error.strerror or error})"
        raise DownloadError(f"cannot download {dest.name}: {reason}; set TRAINSPEED_DATA to a folder you can "
                            "write to, pass --data-dir, or use --dataset synthetic", reasons=[reason]) from None
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in mirrors:
        try:
            _fetch(url, part, progress=progress, timeout_s=timeout_s, label=dest.name)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            # A transfer cut short (IncompleteRead) keeps its .part file: the next try resumes it.
            failures.append(f"{url}: {getattr(error, 'reason', None) or error}")
            continue
        found = md5sum(part)
        if found != md5:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{dest.name} downloaded from {url} has md5 {found}, expected {md5}; "
                "it was deleted: run again to re-fetch"
            )
        part.replace(dest)
        return dest
    raise DownloadError(
        f"cannot download {dest.name} ({'; '.join(failures)}); if this machine is offline, "
        f"copy the file into {dest.parent} or pass --data-dir, or use --dataset synthetic",
        reasons=failures,
    )


def _fetch(url: str, part: Path, *, progress: Progress | None, timeout_s: float, label: str) -> None:
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "trainspeed"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # the partial file is already whole
            return
        raise
    with response:
        resumed = offset and response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        own_bar = progress is None
        bar = _progress() if own_bar else progress
        if own_bar:
            bar.start()
        try:
            task = bar.add_task(label, total=total, completed=offset)
            with open(part, "ab" if resumed else "wb") as file:
                for chunk in _chunks(response):
                    file.write(chunk)
                    bar.advance(task, len(chunk))
        finally:
            if own_bar:
                bar.stop()
    if total is not None and part.stat().st_size < total:
        raise DownloadError(
            f"download of {url} stopped at {part.stat().st_size} of {total} bytes; run again to resume"
        )


def _chunks(response):
    """The body in pieces; a transfer cut mid-chunk still yields what arrived, for the next try to resume from."""
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except http.client.IncompleteRead as error:
            # http.client keeps the cut chunk's bytes on the error it re-raised this one from.
            cause = error.__cause__
            yield error.partial + (cause.partial if isinstance(cause, http.client.IncompleteRead) else b"")
            raise
        if not chunk:
            return
        yield chunk
