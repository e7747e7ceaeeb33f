"""`sensing device fetch-firmware`: downloads from a local HTTP server into the cache, checked against a manifest."""

import functools
import hashlib
import http.server
import json
import threading

import pytest
from typer.testing import CliRunner

from cli.firmware_images import load_manifest
from cli.main import app
from tests.boards.uf2 import RP2040, uf2_file

runner = CliRunner()
NAME = "RPI_PICO_W-20241129-v1.24.1.uf2"


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving the folder `.root`; `.url(name)` is a file's address."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.root = root
    httpd.url = lambda name: f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SENSING_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "firmware"


def manifest_for(tmp_path, url: str, sha256: str | None):
    path = tmp_path / "manifest.json"
    entry = {"file": NAME, "url": url, "sha256": sha256}
    path.write_text(json.dumps({"boards": {"RPI_PICO_W": {"chip": "RP2040", "versions": {"1.24.1": entry}}}}))
    return path


def fetch(*options: str):
    return runner.invoke(app, ["device", "fetch-firmware", *options])


def test_a_download_is_checked_and_kept(tmp_path, server, cache):
    data = uf2_file(RP2040, blocks=64)
    (server.root / NAME).write_bytes(data)
    manifest = manifest_for(tmp_path, server.url(NAME), hashlib.sha256(data).hexdigest())

    first = fetch("--board", "RPI_PICO_W", "--manifest", str(manifest))
    (server.root / NAME).unlink()  # offline from now on
    second = fetch("--board", "RPI_PICO_W", "--manifest", str(manifest))

    assert (first.exit_code, first.stderr) == (0, "")
    assert first.stdout == f"✓ MicroPython 1.24.1 for RPI_PICO_W: downloaded into the cache ({NAME}).\n"
    assert (second.exit_code, second.stderr) == (0, "")
    assert second.stdout == f"✓ MicroPython 1.24.1 for RPI_PICO_W: already in the cache ({NAME}).\n"
    assert sorted(p.name for p in cache.iterdir()) == [NAME]
    assert (cache / NAME).read_bytes() == data


def test_a_download_with_the_wrong_checksum_is_not_kept(tmp_path, server, cache):
    (server.root / NAME).write_bytes(uf2_file(RP2040, blocks=64))
    manifest = manifest_for(tmp_path, server.url(NAME), hashlib.sha256(b"what the manifest expects").hexdigest())

    result = fetch("--board", "RPI_PICO_W", "--manifest", str(manifest))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The download of {NAME} does not match the checksum in the manifest, so it was not kept.\n"
    )
    assert list(cache.iterdir()) == []


def test_a_file_the_server_does_not_have(tmp_path, server, cache):
    manifest = manifest_for(tmp_path, server.url(NAME), "0" * 64)

    result = fetch("--board", "RPI_PICO_W", "--manifest", str(manifest))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ {server.url(NAME)} could not be downloaded (the server answered 404): check the connection and try again.\n"
    )
    assert list(cache.iterdir()) == []


def test_an_entry_without_a_checksum_is_never_downloaded(tmp_path, server, cache):
    (server.root / NAME).write_bytes(b"anything")
    manifest = manifest_for(tmp_path, server.url(NAME), None)

    result = fetch("--board", "RPI_PICO_W", "--manifest", str(manifest))

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ The manifest has no checksum for MicroPython 1.24.1 for RPI_PICO_W, so it cannot be downloaded safely: "
        f"download {server.url(NAME)} yourself, check it, and give it with --firmware.\n"
    )
    assert not cache.exists()


def test_the_shipped_manifest_is_all_unverified_and_so_refused(cache):
    images = [load_manifest().image(board) for board in load_manifest().board_names()]

    result = fetch("--all")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"✗ The manifest has no checksum for {', '.join(image.label for image in images)}, so nothing was "
        "downloaded: add the sha256 of files you checked to the manifest (see docs/flashing.md).\n"
    )
    assert [image.sha256 for image in images] == [None] * 9
    assert all(image.url == f"https://micropython.org/resources/firmware/{image.file}" for image in images)


def test_an_unknown_board(cache):
    result = fetch("--board", "ARDUINO_NANO_ESP32")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "✗ No firmware is known for the board ARDUINO_NANO_ESP32: use one of ESP32_GENERIC, ESP32_GENERIC_C3, "
        "ESP32_GENERIC_C6, ESP32_GENERIC_S2, ESP32_GENERIC_S3, RPI_PICO, RPI_PICO2, RPI_PICO2_W, RPI_PICO_W.\n"
    )
