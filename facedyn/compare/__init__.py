"""Comparing run folders: a row per run (rows), filters and the table (table), the curves (plot).

The command line is facedyn.cli.compare (`facedyn-compare`, `python -m facedyn.compare`).
"""
