"""Finding MediaPipe's model files: explicit path, environment, user cache, verified download, clear errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from facedyn import assets
from facedyn.assets import AssetError, blendshapes_tflite, landmarker_bundle, sha256_of


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """No model configured anywhere; an empty cache folder."""
    monkeypatch.delenv(assets.LANDMARKER_ENV, raising=False)
    monkeypatch.delenv(assets.BLENDSHAPES_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(cache))
    return cache


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """Serve one file over local HTTP and point the download URL at it."""
    def start(content: bytes) -> None:
        folder = tmp_path / "www"
        folder.mkdir()
        (folder / "face_landmarker.task").write_bytes(content)
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setattr(assets, "LANDMARKER_URL", f"http://127.0.0.1:{server.server_port}/face_landmarker.task")

    servers: list[http.server.HTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_explicit_path_wins_over_environment(clean_env, monkeypatch, blendshapes_tflite_file, tmp_path):
    monkeypatch.setenv(assets.BLENDSHAPES_ENV, str(tmp_path / "missing.tflite"))
    assert blendshapes_tflite(blendshapes_tflite_file) == blendshapes_tflite_file


def test_environment_may_name_a_tflite_file_or_a_bundle(clean_env, monkeypatch, blendshapes_tflite_file, landmarker_task):
    monkeypatch.setenv(assets.BLENDSHAPES_ENV, str(blendshapes_tflite_file))
    assert blendshapes_tflite() == blendshapes_tflite_file
    monkeypatch.setenv(assets.BLENDSHAPES_ENV, str(landmarker_task))
    extracted = blendshapes_tflite()
    assert extracted.parent == clean_env / "models"
    assert sha256_of(extracted) == sha256_of(blendshapes_tflite_file)


def test_bundle_from_landmarker_env_is_extracted_once_and_repaired(clean_env, monkeypatch, landmarker_task, blendshapes_tflite_file):
    monkeypatch.setenv(assets.LANDMARKER_ENV, str(landmarker_task))
    extracted = blendshapes_tflite()
    assert extracted.read_bytes() == blendshapes_tflite_file.read_bytes()
    written = extracted.stat().st_mtime_ns
    assert blendshapes_tflite().stat().st_mtime_ns == written  # reused, not extracted again
    extracted.write_bytes(b"\0" * extracted.stat().st_size)  # same size, wrong content
    assert blendshapes_tflite().read_bytes() == blendshapes_tflite_file.read_bytes()


def test_a_missing_configured_file_names_the_setting(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv(assets.LANDMARKER_ENV, str(tmp_path / "nowhere.task"))
    with pytest.raises(AssetError, match=r"FACEDYN_LANDMARKER points to .*nowhere\.task, which is not a file"):
        blendshapes_tflite()
    with pytest.raises(AssetError, match=r"model\.blendshapes\.path points to .*gone\.tflite"):
        blendshapes_tflite(tmp_path / "gone.tflite")


def test_files_that_are_not_models_are_refused(clean_env, tmp_path):
    text = tmp_path / "face_blendshapes.tflite"
    text.write_text("not a model")
    with pytest.raises(AssetError, match=r"face_blendshapes\.tflite is neither a TFLite model nor"):
        blendshapes_tflite(text)
    wrong_zip = tmp_path / "face_landmarker.task"
    with zipfile.ZipFile(wrong_zip, "w") as archive:
        archive.writestr("face_detector.tflite", b"x")
    with pytest.raises(AssetError, match=r"face_landmarker\.task has no face_blendshapes\.tflite"):
        blendshapes_tflite(wrong_zip)
    bad_member = tmp_path / "bad_member.task"
    with zipfile.ZipFile(bad_member, "w") as archive:
        archive.writestr("face_blendshapes.tflite", b"<html>not found</html>")
    with pytest.raises(AssetError, match=r"face_blendshapes\.tflite inside .*bad_member\.task is not a TFLite"):
        blendshapes_tflite(bad_member)


def test_offline_without_a_model_says_where_to_put_it(clean_env, monkeypatch):
    monkeypatch.setattr(assets, "LANDMARKER_URL", "http://127.0.0.1:9/face_landmarker.task")  # nothing listens
    with pytest.raises(AssetError) as error:
        blendshapes_tflite()
    message = str(error.value)
    assert "are you offline?" in message
    assert str(clean_env / "face_landmarker.task") in message
    assert "FACEDYN_LANDMARKER" in message and "FACEDYN_BLENDSHAPES" in message
    assert "model.blendshapes.path" in message
    with pytest.raises(AssetError, match="was not found"):
        landmarker_bundle(download=False)


def test_download_is_verified_and_cached(clean_env, monkeypatch, serve, landmarker_task, blendshapes_tflite_file):
    serve(landmarker_task.read_bytes())
    bundle = landmarker_bundle()
    assert bundle == clean_env / "face_landmarker.task" and sha256_of(bundle) == assets.LANDMARKER_SHA256
    monkeypatch.setattr(assets, "LANDMARKER_URL", "http://127.0.0.1:9/face_landmarker.task")
    assert landmarker_bundle() == bundle  # found in the cache, no second download
    assert blendshapes_tflite().read_bytes() == blendshapes_tflite_file.read_bytes()


def test_a_download_with_the_wrong_checksum_is_not_cached(clean_env, serve):
    serve(b"PK\x05\x06" + b"\0" * 18)  # an empty zip, e.g. a truncated or substituted file
    with pytest.raises(AssetError, match=r"has SHA-256 [0-9a-f]{64}, expected 64184e22"):
        landmarker_bundle()
    assert not (clean_env / "face_landmarker.task").exists()


def test_a_damaged_cached_bundle_is_reported(clean_env):
    clean_env.mkdir(parents=True, exist_ok=True)
    (clean_env / "face_landmarker.task").write_bytes(b"partial")
    digest = hashlib.sha256(b"partial").hexdigest()
    with pytest.raises(AssetError, match=rf"face_landmarker\.task has SHA-256 {digest}.*Delete it"):
        landmarker_bundle()
