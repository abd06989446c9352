"""`fink datasim download` against an HTTP server on 127.0.0.1 that serves tarballs made
from the real ZTF alerts of ../shared/datasim: every file unpacked, an interrupted download
resumed, a corrupt or path-escaping tarball refused with nothing left behind."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fink_broker.cli.main import main
from fink_broker.surveys.names import ZTF_NAME

NIGHT = "20200101"


class Archive:
    """What the test server serves, and what it was asked."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etag = '"v1"'
        self.drop_after: int | None = None  # close the next answer after this many bytes
        self.requests: list[dict[str, str]] = []


def make_handler(archive: Archive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

        def do_GET(self) -> None:
            archive.requests.append(dict(self.headers))
            body = archive.files.get(self.path)
            if body is None:
                self.send_error(404, "no such night")
                return
            start, status = 0, 200
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and self.headers.get("If-Range") == archive.etag:
                start = int(wanted[6:].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                status = 206
            self.send_response(status)
            self.send_header("ETag", archive.etag)
            self.send_header("Content-Length", str(len(body) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            payload = body[start:]
            if archive.drop_after is not None:
                payload, archive.drop_after = payload[: archive.drop_after], None
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Archive, str]]:
    archive = Archive()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(archive))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield archive, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def tarball(members: dict[str, bytes], *, link: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            out.addfile(info)
    return buffer.getvalue()


@pytest.fixture
def alerts(datasim: Path) -> dict[str, bytes]:
    """The real alert files, by name, as the archive's tarball holds them."""
    return {p.name: p.read_bytes() for p in sorted((datasim / ZTF_NAME).glob("*.avro"))}


def fink_download(tmp_path: Path, base: str, *extra: str) -> int:
    return main(
        [
            "datasim",
            "download",
            "--night",
            NIGHT,
            "--folder",
            str(tmp_path / "datasim"),
            "--url",
            base + "/alerts/ztf_public_{night}.tar.gz",
            *extra,
        ]
    )


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def leftovers(tmp_path: Path) -> list[str]:
    root = tmp_path / "datasim"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_every_alert_file_is_unpacked(tmp_path, server, alerts, capsys) -> None:
    archive, base = server
    archive.files[f"/alerts/ztf_public_{NIGHT}.tar.gz"] = tarball(alerts)
    assert fink_download(tmp_path, base) == 0
    night = tmp_path / "datasim" / NIGHT
    expected = {n: hashlib.sha256(d).hexdigest() for n, d in alerts.items()}
    assert digests(night) == expected and len(expected) == 50
    assert leftovers(tmp_path) == sorted([NIGHT, *(f"{NIGHT}/{n}" for n in alerts)])  # no tarball
    captured = capsys.readouterr()
    assert f"{len(alerts)} alerts" in captured.out and f"--datasim {night}" in captured.out
    assert "(100%)" in captured.err  # the progress
    assert fink_download(tmp_path, base) == 0  # a second run finds the night and stops
    assert "already there" in capsys.readouterr().out and len(archive.requests) == 1


def test_an_interrupted_download_resumes(tmp_path, server, alerts, capsys) -> None:
    archive, base = server
    body = tarball(alerts)
    archive.files[f"/alerts/ztf_public_{NIGHT}.tar.gz"] = body
    archive.drop_after = len(body) // 3
    assert fink_download(tmp_path, base, "--attempts", "1") == 1
    message = capsys.readouterr().err
    assert "interrupted after" in message and "run the same command again" in message
    assert not (tmp_path / "datasim" / NIGHT).exists()
    assert fink_download(tmp_path, base) == 0
    resumed = archive.requests[-1]
    assert resumed["Range"] == f"bytes={len(body) // 3}-" and resumed["If-Range"] == archive.etag
    assert digests(tmp_path / "datasim" / NIGHT) == {
        n: hashlib.sha256(d).hexdigest() for n, d in alerts.items()
    }
    # within one run, the next attempt resumes by itself
    archive.drop_after = len(body) // 2
    assert fink_download(tmp_path, base, "--force", "--attempts", "3") == 0
    assert archive.requests[-1]["Range"] == f"bytes={len(body) // 2}-"
    assert len(list((tmp_path / "datasim" / NIGHT).iterdir())) == len(alerts)


def test_a_changed_file_is_downloaded_again_whole(tmp_path, server, alerts) -> None:
    archive, base = server
    path = f"/alerts/ztf_public_{NIGHT}.tar.gz"
    first = tarball(dict(list(alerts.items())[:10]))
    archive.files[path], archive.drop_after = first, len(first) // 2
    assert fink_download(tmp_path, base, "--attempts", "1") == 1
    archive.files[path], archive.etag = tarball(alerts), '"v2"'  # the server's file changed
    assert fink_download(tmp_path, base) == 0
    assert len(list((tmp_path / "datasim" / NIGHT).iterdir())) == len(alerts)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("corrupt", "corrupt"),
        ("truncated", "corrupt"),
        ("escaping", "escapes the destination"),
        ("absolute", "absolute path"),
        ("link", "is a link"),
        ("not_avro", "not an Avro container"),
        ("empty", "holds no alert"),
    ],
)
def test_a_bad_tarball_is_refused_and_nothing_is_left(
    tmp_path, server, alerts, capsys, kind, reason
) -> None:
    archive, base = server
    good = dict(list(alerts.items())[:5])
    if kind in ("corrupt", "truncated"):
        body = bytearray(tarball(alerts))
        if kind == "corrupt":
            middle = len(body) // 2
            body[middle : middle + 64] = bytes(64)
        else:
            body = body[: len(body) * 2 // 3]
        body = bytes(body)
    elif kind == "escaping":
        body = tarball({**good, "../escaped.avro": next(iter(alerts.values()))})
    elif kind == "absolute":
        body = tarball({**good, str(tmp_path / "absolute.avro"): next(iter(alerts.values()))})
    elif kind == "link":
        body = tarball(good, link=("link.avro", "/etc/passwd"))
    elif kind == "not_avro":
        body = tarball({**good, "fake.avro": b"not an alert"})
    else:
        body = tarball({"README": b"nothing tonight"})
    archive.files[f"/alerts/ztf_public_{NIGHT}.tar.gz"] = body
    assert fink_download(tmp_path, base) == 1
    assert reason in capsys.readouterr().err
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "escaped.avro").exists() and not (tmp_path / "absolute.avro").exists()


def test_a_missing_night_says_so(tmp_path, server, capsys) -> None:
    _, base = server
    assert fink_download(tmp_path, base) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert leftovers(tmp_path) == []
    assert main(["datasim", "download", "--night", "2020-01-01"]) == 2
