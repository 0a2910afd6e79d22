"""Where MediaPipe's model files come from: a path, an environment variable, the user cache, or a download.

Search order for the Face Landmarker bundle (`face_landmarker.task`, a zip):
  1. an explicit path (config),
  2. the environment variable FACEDYN_LANDMARKER,
  3. `<cache>/face_landmarker.task`,
  4. a download of MediaPipe's official bundle, checked against its SHA-256 and cached.
The blendshape model (`face_blendshapes.tflite`) is taken from FACEDYN_BLENDSHAPES or an explicit
path (a .tflite file or a .task bundle), otherwise out of the bundle above.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
import zipfile
from pathlib import Path

from platformdirs import user_cache_dir

from facedyn.utils.io import atomic_write_bytes

LANDMARKER_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    "face_landmarker.task"
)
LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
LANDMARKER_ENV = "FACEDYN_LANDMARKER"
BLENDSHAPES_ENV = "FACEDYN_BLENDSHAPES"
CACHE_ENV = "FACEDYN_CACHE_DIR"
BLENDSHAPES_MEMBER = "face_blendshapes.tflite"
MESH_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
TFLITE_IDENTIFIER = b"TFL3"


class AssetError(RuntimeError):
    """A model file is missing, unreadable or not what it should be; the message says what to do."""


def cache_dir() -> Path:
    """The user cache folder for downloads, converted models and dataset caches."""
    path = Path(os.environ.get(CACHE_ENV) or user_cache_dir("facedyn"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _offline_help() -> str:
    return (
        f"Put MediaPipe's face_landmarker.task (float16, version 1; SHA-256 {LANDMARKER_SHA256[:12]}…) "
        f"at {cache_dir() / 'face_landmarker.task'}, or point {LANDMARKER_ENV}=/path/to/face_landmarker.task "
        f"(or {BLENDSHAPES_ENV}=/path/to/face_blendshapes.tflite, or model.blendshapes.path=…). "
        f"It can be downloaded on a machine with internet from {LANDMARKER_URL}"
    )


def _existing_file(path: str | os.PathLike, source: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise AssetError(f"{source} points to {path}, which is not a file. {_offline_help()}")
    return path


def landmarker_bundle(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Path to MediaPipe's face_landmarker.task, found or downloaded as described in the module doc."""
    if path:
        return _existing_file(path, "the configured landmarker path")
    if os.environ.get(LANDMARKER_ENV):
        return _existing_file(os.environ[LANDMARKER_ENV], LANDMARKER_ENV)
    cached = cache_dir() / "face_landmarker.task"
    if cached.is_file():
        # Only verified downloads are written here; anything else was put there by hand or damaged.
        digest = sha256_of(cached)
        if digest != LANDMARKER_SHA256:
            raise AssetError(
                f"{cached} has SHA-256 {digest}, not the expected {LANDMARKER_SHA256}. Delete it (facedyn will "
                f"download it again) or point {LANDMARKER_ENV} at the bundle you mean to use."
            )
        return cached
    if not download:
        raise AssetError(f"MediaPipe's face_landmarker.task was not found. {_offline_help()}")
    return _download_bundle(cached)


def _download_bundle(target: Path) -> Path:
    try:
        with urllib.request.urlopen(LANDMARKER_URL, timeout=30) as response:
            data = response.read()
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        raise AssetError(f"Could not download face_landmarker.task ({exc}); are you offline? {_offline_help()}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != LANDMARKER_SHA256:
        raise AssetError(
            f"The downloaded face_landmarker.task has SHA-256 {digest}, expected {LANDMARKER_SHA256}; "
            f"not cached. {_offline_help()}"
        )
    atomic_write_bytes(target, data)
    return target


def read_bundle_member(bundle: Path, member: str) -> bytes:
    """One file out of a .task bundle, with a clear error when the bundle is not one."""
    try:
        with zipfile.ZipFile(bundle) as archive:
            return archive.read(member)
    except zipfile.BadZipFile:
        raise AssetError(f"{bundle} is not a MediaPipe .task bundle (not a zip file)") from None
    except KeyError:
        raise AssetError(f"{bundle} has no {member}; is it MediaPipe's face_landmarker.task?") from None


def is_tflite(data: bytes) -> bool:
    """TFLite flatbuffers carry the file identifier "TFL3" at bytes 4-8."""
    return data[4:8] == TFLITE_IDENTIFIER


def blendshapes_tflite(path: str | os.PathLike | None = None) -> Path:
    """Path to face_blendshapes.tflite: given directly, or extracted (once, by content hash) from a bundle.

    `path` (config: model.blendshapes.path) and FACEDYN_BLENDSHAPES may name a .tflite file or a .task
    bundle; the file's content decides which, not its name.
    """
    if path:
        source = _existing_file(path, "model.blendshapes.path")
    elif os.environ.get(BLENDSHAPES_ENV):
        source = _existing_file(os.environ[BLENDSHAPES_ENV], BLENDSHAPES_ENV)
    else:
        source = landmarker_bundle()
    with open(source, "rb") as fh:
        head = fh.read(8)
    # Checked before the zip test: a TFLite file with packed metadata is also a valid zip.
    if is_tflite(head):
        return source
    if not zipfile.is_zipfile(source):
        raise AssetError(
            f"{source} is neither a TFLite model nor a MediaPipe .task bundle; expected face_blendshapes.tflite "
            f"or face_landmarker.task"
        )
    data = read_bundle_member(source, BLENDSHAPES_MEMBER)
    if not is_tflite(data):
        raise AssetError(f"{BLENDSHAPES_MEMBER} inside {source} is not a TFLite model")
    digest = hashlib.sha256(data).hexdigest()
    extracted = cache_dir() / "models" / f"face_blendshapes-{digest[:16]}.tflite"
    # The name carries the content hash, so a damaged extraction is detected and replaced.
    if not extracted.is_file() or sha256_of(extracted) != digest:
        atomic_write_bytes(extracted, data)
    return extracted
