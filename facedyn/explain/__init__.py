"""Why the model gave a grade: where the flow branch looked (Grad-CAM, facedyn.explain.gradcam), which
blendshapes the landmark branch used (integrated gradients, facedyn.explain.blendshapes), for the frames a
report shows (facedyn.explain.frames); and whether those explanations mean something
(`python -m facedyn.explain.check`). Light on import: torch and captum load with the names that need them
(facedyn.explain.maps is numpy only, for the report).
"""

from __future__ import annotations

from facedyn.utils.lazy import lazy_attributes

_LAZY = {"FrameExplanation": "facedyn.explain.frames", "explain_frames": "facedyn.explain.frames"}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
