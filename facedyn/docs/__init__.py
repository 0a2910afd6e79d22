"""Pages of the documentation site that are rendered from the code and from committed results, never typed.

    python -m facedyn.docs.config_reference   # docs/configuration-reference.md from the config schemas and conf/
    python -m facedyn.docs.render             # benchmark and cross-validation tables from docs/data/ (and README.md)

Each takes `--check`: exit 1, naming the page, when the committed page differs from what it would render.
"""
