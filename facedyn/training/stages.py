"""The pipeline's shape: its stages in order, as the conf/stage/*.yaml files chain them by `after`.

Everything that needs "the first stage", "the last stage" or "the stage before" derives it from here.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from omegaconf import OmegaConf

from facedyn.conf import CONF_DIR
from facedyn.utils.config import ConfigError


def pipeline_order(stage_dir: Path) -> tuple[str, ...]:
    """The stages in pipeline order, as the conf/stage/*.yaml files chain them by `after`."""
    after = {}
    for path in sorted(stage_dir.glob("*.yaml")):
        node = OmegaConf.load(path)
        if "name" in node:  # not a list of stages like all.yaml
            after[str(node.name)] = None if node.get("after") is None else str(node.after)
    roots = [name for name, previous in after.items() if previous is None]
    order = roots[:1]
    while len(roots) == 1:
        following = [name for name, previous in after.items() if previous == order[-1]]
        if len(following) != 1 or following[0] in order:
            break
        order.append(following[0])
    if len(order) != len(after):
        raise ConfigError(f"{stage_dir}: the stages' `after` keys must chain every stage once, starting from the "
                          f"one stage with `after: null`; found {after}")
    return tuple(order)


STAGE_ORDER: tuple[str, ...] = pipeline_order(CONF_DIR / "stage")
FINAL_STAGE: str = STAGE_ORDER[-1]  # the one whose model is the pipeline's (prediction, export)


def stage_key(stage: str) -> str:
    """Key of a stage under cfg.stages: `s2b` for stage 2b (Hydra's override grammar wants a letter first)."""
    return f"s{stage}"


def stage_stream(stage: str) -> int:
    """The key of a stage's random draws (training order, augmentation): a CRC of its name, so that adding,
    removing or reordering stages changes no other stage's draws."""
    return zlib.crc32(str(stage).encode())
