"""What decides a decoded sample besides its files: the reader's settings, translated from data.* once.

`ReaderSettings.from_config` resolves the landmark units, the grade keys, the flow images' full-brightness
magnitude and head-motion compensation, refusing contradictory settings with one line each; the result is
part of the cache key. facedyn.data.reader decodes with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from facedyn.data.config import DataConfig
from facedyn.data.errors import DataError
from facedyn.data.head_motion import CompensationSettings


@dataclass(frozen=True)
class ReaderSettings:
    """Everything besides the files that decides what a decoded sample holds (part of the cache key)."""

    image_size: int
    resize_flow: bool
    dynamics_key: str
    synkinesis_key: str
    dynamics_ignore: tuple[int, ...]
    synkinesis_ignore: tuple[int, ...]
    landmark_scale: tuple[float, float]  # multiplies (x, y): 1 for pixels, the frame size for normalised
    head_motion: Optional[CompensationSettings] = None  # compensation of the flow images (off: None)
    require_labels: bool = True  # False only for prediction: a missing label file makes an unlabelled sample

    @classmethod
    def from_config(cls, cfg: DataConfig, require_labels: bool = True) -> "ReaderSettings":
        return cls(
            image_size=int(cfg.image_size),
            resize_flow=bool(cfg.resize_flow),
            dynamics_key=cfg.labels.dynamics_key,
            synkinesis_key=cfg.labels.synkinesis_key,
            dynamics_ignore=tuple(int(v) for v in cfg.labels.dynamics_ignore),
            synkinesis_ignore=tuple(int(v) for v in cfg.labels.synkinesis_ignore),
            landmark_scale=landmark_scale(cfg),
            head_motion=compensation_settings(cfg),
            require_labels=require_labels,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def landmark_scale(cfg: DataConfig) -> tuple[float, float]:
    units = cfg.landmarks.units
    if units == "pixels":
        return (1.0, 1.0)
    if units == "normalised":
        width, height = cfg.landmarks.image_width, cfg.landmarks.image_height
        if not width or not height:
            raise DataError(
                "data.landmarks.units=normalised needs the video frame size: "
                "data.landmarks.image_width=… data.landmarks.image_height=…"
            )
        return (float(width), float(height))
    raise DataError(f"data.landmarks.units={units!r} is not one of: pixels, normalised")


def landmark_frame(cfg: DataConfig) -> Optional[tuple[float, float]]:
    """(width, height) of the landmarks' video frame, when known."""
    if cfg.landmarks.image_width and cfg.landmarks.image_height:
        return (float(cfg.landmarks.image_width), float(cfg.landmarks.image_height))
    if cfg.kind == "synthetic":  # the generator's landmarks are pixels of its rendered frames
        return (float(cfg.synthetic.render_size), float(cfg.synthetic.render_size))
    return None


def flow_max_magnitude(cfg: DataConfig) -> Optional[float]:
    """Flow pixels (at image_size) the flow images show at full brightness, when known."""
    if cfg.flow.max_magnitude is not None:
        if not cfg.flow.max_magnitude > 0:
            raise DataError(f"data.flow.max_magnitude={cfg.flow.max_magnitude} must be positive")
        return float(cfg.flow.max_magnitude)
    return float(cfg.synthetic.max_flow_magnitude) if cfg.kind == "synthetic" else None


def compensation_settings(cfg: DataConfig) -> Optional[CompensationSettings]:
    """data.flow's head-motion compensation, resolved (None when it is off)."""
    flow = cfg.flow
    if not flow.compensate_head_motion:
        if flow.mask is not None:
            raise DataError(f"data.flow.mask={flow.mask} masks the images head-motion compensation rewrites "
                            "(data.flow.compensate_head_motion=true); the synthetic data's mask is "
                            "data.synthetic.flow_mask, a prepared folder's prepare.py's flow.mask")
        return None
    magnitude = flow_max_magnitude(cfg)
    if magnitude is None:
        raise DataError("data.flow.compensate_head_motion=true needs data.flow.max_magnitude: the flow (pixels at "
                        "image_size) that the flow images show at full brightness")
    crop = str(flow.crop) if flow.crop is not None else ("frame" if cfg.kind == "synthetic" else "face_box")
    mask = str(flow.mask) if flow.mask is not None else (cfg.synthetic.flow_mask if cfg.kind == "synthetic" else "face")
    return CompensationSettings(str(flow.head_motion_model), crop, bool(flow.head_motion_refine), magnitude,
                                int(cfg.image_size), landmark_frame(cfg), mask)
