"""facedyn's Hydra configs, shipped inside the package (`pkg://facedyn.conf`) so an installed facedyn composes."""
