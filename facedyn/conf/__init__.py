"""facedyn's Hydra configs, shipped inside the package (`pkg://facedyn.conf`) so an installed facedyn composes."""

from pathlib import Path

CONF_PACKAGE = "pkg://facedyn.conf"  # Hydra's config_path for the entry points
CONF_DIR = Path(__file__).resolve().parent  # the same folder, for readers of single files
