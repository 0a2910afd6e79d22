"""Settings of the synthetic dataset (a Hydra structured-config schema, held by DataConfig as data.synthetic)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

from facedyn.flow.mask import FLOW_MASKS

GENERATOR_VERSION = 4  # bump when the generated data changes for the same settings
EXPRESSIONS = ("eye_close", "smile", "brow_raise", "snarl", "lip_pucker")


@dataclass
class SyntheticConfig:
    videos: int = 80  # subjects; each is filmed once per expression
    frames_per_video: int = 3  # frames per expression clip, spread from onset to peak
    expressions: List[str] = field(default_factory=lambda: list(EXPRESSIONS))  # which of the five to film
    seed: int = 0  # seeds every subject's face, grades and nuisances
    root: Optional[str] = None  # None: <cache>/datasets/synthetic-<hash of the other settings>
    image_size: int = 112  # side of the saved flow image
    render_size: int = 224  # side of the rendered frames (landmarks are in these pixels)
    max_flow_magnitude: float = 4.0  # flow (pixels at image_size) shown at full brightness
    flow_method: str = "farneback"  # see facedyn.flow.encoding.FLOW_METHODS
    flow_mask: str = "face"  # face: no flow outside the face, as in prepare.py's images; none: as computed (facedyn.flow.mask)
    jpeg_quality: int = 90  # of the saved flow image and of the rendered frames (video compression)
    # Labels.
    healthy_fraction: float = 0.15  # share of subjects with no palsy (dynamics 5, synkinesis 0)
    # Movement: the paralysed side moves movement_by_grade[dynamics - 1] times the healthy side.
    movement_by_grade: List[float] = field(default_factory=lambda: [0.05, 0.28, 0.52, 0.76, 1.0])
    movement_noise: float = 0.04  # sd of the per-clip deviation from that fraction
    # Synkinesis: involuntary movement elsewhere on the paralysed side, synkinesis_by_grade[grade] of full.
    synkinesis_by_grade: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.8])
    synkinesis_noise: float = 0.04  # sd of the per-clip deviation from that share
    # At rest the paralysed side sags: resting_droop x (5 - mean dynamics) / 4 of a full sag (2.5 mm at the mouth).
    resting_droop: float = 1.0
    peak_fraction_range: List[float] = field(default_factory=lambda: [0.6, 1.0])  # first and last frame
    subject_strength_range: List[float] = field(default_factory=lambda: [0.9, 1.1])  # healthy-side gain
    # Nuisances.
    shape_variation: float = 1.0  # scale of the per-subject face-shape deformation
    max_yaw_deg: float = 12.0  # largest head turn of a subject (degrees, uniform)
    max_pitch_deg: float = 8.0  # largest head nod of a subject (degrees, uniform)
    max_roll_deg: float = 8.0  # largest head tilt of a subject (degrees, uniform)
    head_motion_deg: float = 0.4  # sd of the head rotation between baseline and expression frame
    head_motion_px: float = 0.4  # sd of the head shift between baseline and expression frame
    landmark_noise_px: float = 0.4  # sd of the landmark detector's jitter (render pixels)
    image_noise: float = 2.0  # sd of the camera noise (grey levels)
    lighting_change: float = 0.03  # sd of the relative brightness change between the two frames

    def __post_init__(self) -> None:
        problems = []
        if self.videos < 1 or self.frames_per_video < 1:
            problems.append("videos and frames_per_video must be at least 1")
        unknown = [name for name in self.expressions if name not in EXPRESSIONS]
        if unknown or not self.expressions:
            problems.append(f"expressions {unknown or '[]'} are not among {list(EXPRESSIONS)}")
        if len(self.movement_by_grade) != 5 or len(self.synkinesis_by_grade) != 4:
            problems.append("movement_by_grade needs 5 values (dynamics 1-5), synkinesis_by_grade 4 (0-3)")
        if self.image_size < 16 or self.render_size < self.image_size:
            problems.append("image_size must be >= 16 and render_size >= image_size")
        if self.flow_mask not in FLOW_MASKS:
            problems.append(f"flow_mask must be one of {', '.join(FLOW_MASKS)}")
        if not self.max_flow_magnitude > 0:
            problems.append("max_flow_magnitude must be positive")
        if not 0 < self.peak_fraction_range[0] <= self.peak_fraction_range[1] <= 1:
            problems.append("peak_fraction_range must be 0 < first <= last <= 1")
        if problems:
            raise ValueError("invalid synthetic dataset settings: " + "; ".join(problems))

    def content(self) -> dict:
        """Every setting that shapes the data (all but root), as plain JSON values."""
        values = asdict(self)
        values.pop("root")
        return values

    def digest(self) -> str:
        """Short hash of content(): names the cached dataset these settings produce."""
        text = json.dumps({"version": GENERATOR_VERSION, **self.content()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


PRESETS = {
    "default": {"videos": 80, "frames_per_video": 3},
    "large": {"videos": 200, "frames_per_video": 8},
    # Unregistered clinic recordings: the head turns a degree or so about each axis and shifts ~2 render
    # pixels (~1 px of the 112 px flow image) between the baseline and each expression frame, and the
    # landmark detector jitters ~1 px; the default data has 0.4 of each.
    "hard": {"videos": 80, "frames_per_video": 3, "head_motion_deg": 1.0, "head_motion_px": 2.0,
             "landmark_noise_px": 1.0},
    # A still camera and steady light: the flow between the frames is the face's movement alone, so the
    # explanations' check can tell maps that follow the movement from maps that follow the nuisances.
    "still_camera": {"videos": 40, "frames_per_video": 3, "head_motion_deg": 0.0, "head_motion_px": 0.0,
                     "image_noise": 0.0, "lighting_change": 0.0},
}


def preset(name: str, **overrides) -> SyntheticConfig:
    """A preset's settings (see PRESETS) with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(SyntheticConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"unknown synthetic settings {bad}")
    return SyntheticConfig(**{**PRESETS[name], **overrides})
