"""Clinic recordings -> the training layout: `facedyn.videos.prepare(cfg) -> PrepareSummary`.

`prepare(cfg)` takes a `PrepareConfig` (facedyn.videos.config; also a Hydra/OmegaConf node or a plain dict
of the same keys: `videos`, `out`, optional `grades`, ...) and turns every clip under `cfg.videos`
(`<patient>/<expression>.<ext>` or `<expression>/<patient>.<ext>`) into sample folders
`<out>/<expression>/<patient>_<frame>/` that `facedyn.data` reads (flow JPEG, both 146-point landmark sets
in pixels, and `expression_g_column.json` when the grading sheet has the clip; without `grades` no label
file is written, for prediction). It writes `<out>/prepare_report.csv` (one row per clip: status `ok` or
`skipped` with the reason; grades without a video as `no_video`) and one `contact_sheet_<expression>.png`
per expression, and returns a `PrepareSummary` (counts, sample folders per clip, report path, time per
step). MediaPipe runs only in spawned worker processes, so the caller may hold torch. A rerun into the
same `out` reuses clips whose video and settings are unchanged; a second concurrent writer is refused.
User errors (bad settings, unreadable grading sheet, `out` not a prepare folder) raise `PrepareError`
with a one-line message; bad clips are not errors, they are report rows. `PrepareSummary.samples == 0`
means nothing usable was produced (prepare.py then exits non-zero).
"""

from __future__ import annotations

from facedyn.utils.lazy import lazy_attributes
from facedyn.videos.errors import PrepareError

# Light on import: the worker processes import submodules of this package and must never pull torch.
_LAZY = {
    "prepare": "facedyn.videos.pipeline",
    "PrepareSummary": "facedyn.videos.pipeline",
    "PrepareConfig": "facedyn.videos.config",
}

__all__ = ["PrepareError", *_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
