"""MediaPipe's canonical face mesh, read from the Face Landmarker bundle.

The bundle's geometry_pipeline_metadata_landmarks.binarypb is a GeometryPipelineMetadata protobuf:
field 1 is the canonical Mesh3d, whose field 3 holds float32 vertex data (x, y, z in cm with y up,
then u, v) and field 4 the triangle vertex indices. The wire format is small enough to read by hand,
which keeps the generator free of generated protobuf classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facedyn.assets import MESH_MEMBER, AssetError, landmarker_bundle, read_bundle_member

NUM_MESH_VERTICES = 468
NUM_MESH_TRIANGLES = 898
_FLOATS_PER_VERTEX = 5  # x, y, z, u, v


@dataclass(frozen=True)
class CanonicalMesh:
    vertices: np.ndarray  # (468, 3) float64, cm, x towards the subject's left, y up, z towards the camera
    uv: np.ndarray  # (468, 2) float64 texture coordinates in [0, 1], v up
    triangles: np.ndarray  # (898, 3) int64 vertex indices


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message; length-delimited values are bytes."""
    out: list[tuple[int, int, object]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} for field {number}")
        if pos > len(data):
            raise ValueError(f"field {number} runs past the end of the message")
        out.append((number, wire, value))
    return out


def _repeated_floats(fields: list[tuple[int, int, object]], number: int) -> np.ndarray:
    chunks = [np.frombuffer(v, dtype="<f4") for n, w, v in fields if n == number and w in (2, 5)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype="<f4")


def _repeated_uints(fields: list[tuple[int, int, object]], number: int) -> np.ndarray:
    values: list[int] = []
    for n, wire, value in fields:
        if n != number:
            continue
        if wire == 0:
            values.append(value)  # type: ignore[arg-type]
        elif wire == 2:  # packed
            pos = 0
            while pos < len(value):  # type: ignore[arg-type]
                item, pos = _varint(value, pos)  # type: ignore[arg-type]
                values.append(item)
    return np.asarray(values, dtype=np.int64)


def parse_canonical_mesh(data: bytes, source: str = "geometry metadata") -> CanonicalMesh:
    """Parse a serialized GeometryPipelineMetadata into the canonical mesh; errors name `source`."""
    try:
        meshes = [v for n, w, v in _fields(data) if n == 1 and w == 2]
        if not meshes:
            raise ValueError("no canonical mesh (field 1)")
        mesh_fields = _fields(meshes[-1])  # type: ignore[arg-type]
        buffer = _repeated_floats(mesh_fields, 3).astype(np.float64)
        indices = _repeated_uints(mesh_fields, 4)
    except ValueError as exc:
        raise AssetError(f"{source}: not a GeometryPipelineMetadata protobuf ({exc})") from None
    if buffer.size != NUM_MESH_VERTICES * _FLOATS_PER_VERTEX or indices.size != NUM_MESH_TRIANGLES * 3:
        raise AssetError(
            f"{source}: expected {NUM_MESH_VERTICES} vertices and {NUM_MESH_TRIANGLES} triangles, "
            f"found {buffer.size / _FLOATS_PER_VERTEX:g} and {indices.size / 3:g}"
        )
    if indices.max() >= NUM_MESH_VERTICES:
        raise AssetError(f"{source}: triangle index {indices.max()} is out of range")
    table = buffer.reshape(NUM_MESH_VERTICES, _FLOATS_PER_VERTEX)
    return CanonicalMesh(vertices=table[:, :3].copy(), uv=table[:, 3:].copy(), triangles=indices.reshape(-1, 3))


@lru_cache(maxsize=4)
def _load(bundle: Path) -> CanonicalMesh:
    return parse_canonical_mesh(read_bundle_member(bundle, MESH_MEMBER), f"{bundle}!{MESH_MEMBER}")


def canonical_mesh(bundle: Path | None = None) -> CanonicalMesh:
    """The canonical mesh out of the Face Landmarker bundle (found as facedyn.assets describes)."""
    return _load(Path(bundle) if bundle else landmarker_bundle())
