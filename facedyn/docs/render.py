"""Tables of measured figures in the docs and README.md, rendered from the JSON their commands wrote.

    python -m facedyn.docs.render [--check]

A page holds hand-written prose and generated blocks, `<!-- generated: NAME -->` … `<!-- /generated -->`;
this fills each block from committed JSON and links the JSON it came from:

  benchmarks          per script in benchmarks/: its docstring's summary and usage, and
                      docs/data/benchmarks/<script>.json as benchmarks/record.py writes it
  crossval            docs/data/crossval/<name>.json, the crossval.json of `python -m facedyn.crossval`
  crossval-default    docs/data/crossval/trainer_grad_clip.json alone: the default pipeline's cross-validation
  default-run         docs/data/benchmarks/bench_default_run.json: `python train.py`'s validation figures
  holdout             docs/data/holdout/<name>.json, the holdout.json of `python -m facedyn.crossval.evaluate`
  explain-check       docs/data/explain/*.json of `python -m facedyn.explain.check`, a section each
  stages              the default pipeline's stages as facedyn/conf/stage/*.yaml set them

Each table keeps the rows and columns its command prints, so rerunning the command shown above a table
gives a table of the same shape.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

from facedyn.docs.pages import DOCS, REPO, fill_blocks, report, table, write_or_check

DATA = DOCS / "data"
BENCHMARKS = DATA / "benchmarks"
CROSSVAL = DATA / "crossval"
HOLDOUT = DATA / "holdout"
EXPLAIN_CHECKS = DATA / "explain"
COMMAND = "python -m facedyn.docs.render"
# Pages with generated blocks (relative to the repository root).
PAGES = ("README.md", "docs/benchmarks.md", "docs/results.md", "docs/training.md")
# Overrides that say where files go or how fast a run is, not what it learns: left out of a shown command.
PLACE_AND_PACE = ("paths.output_dir", "data.cache_dir", "data.synthetic.root", "trainer.progress", "trainer.threads",
                  "data.num_workers", "data.prefetch_batches")


def link(json_path: Path, page: Path) -> str:
    """A relative link from `page` to the JSON file a table was rendered from."""
    return f"[`{json_path.name}`]({Path(os.path.relpath(json_path, page.parent)).as_posix()})"


# ---- benchmarks ---------------------------------------------------------------------------------------------------

def machine_line(data: dict) -> str:
    m = data["machine"]
    cpu = m["cpu"]
    parts = [f"{cpu['model']}, {cpu['cores']} cores" + (f" ({', '.join(cpu['flags'])})" if cpu.get("flags") else "")]
    if m.get("memory_gib"):
        parts.append(f"{m['memory_gib']} GiB")
    if m.get("gpu"):
        parts.append(m["gpu"])
    if m.get("torch"):
        parts.append(f"torch {m['torch']}")
    parts.append(f"Python {m['python']}")
    code = data["code"]
    if code.get("commit"):
        parts.append(f"commit {code['commit'][:10]}" + (" with local changes" if code.get("modified") else ""))
    parts.append(data["started"][:10])
    return "; ".join(parts) + busy(data)


def busy(data: dict) -> str:
    """A warning where the machine ran more than one process per core when the benchmark started."""
    if data["load_before"][0] > data["machine"]["cpu"]["cores"]:
        return " — other work shared the cores: times are longer than on an idle machine of the kind"
    return ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def benchmark_result(path: Path, page: Path) -> str:
    data = json.loads(path.read_text())
    text = [f"Measured with `{data['command']}` on {machine_line(data)}. Data: {link(path, page)}.", ""]
    for note in data["notes"]:
        text += [note, ""]
    for t in data["tables"]:
        text += [f"**{t['title']}**", "", table(t["columns"], [[_cell(v) for v in row] for row in t["rows"]])]
    return "\n".join(text)


def script_doc(path: Path) -> tuple[str, str]:
    """(summary, usage) of a benchmark script: its docstring's first paragraph, and its indented command line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraphs = doc.split("\n\n")
    usage = next((p.strip() for p in paragraphs[1:] if p.startswith("    ") and "benchmarks/" in p), "")
    return " ".join(paragraphs[0].split()), usage


def benchmarks_block(page: Path) -> str:
    """One section per script in benchmarks/: what it measures, how to run it, and its committed result."""
    sections = []
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        if not script.name.startswith(("bench_", "cv_")):
            continue
        summary, usage = script_doc(script)
        result = BENCHMARKS / f"{script.stem}.json"
        text = [f"### `{script.name}` {{#{script.stem}}}", "", summary, ""]
        text += [f"```bash\n{usage}\n```", ""] if usage else []
        text.append(benchmark_result(result, page) if result.is_file() else
                    f"No result committed (`docs/data/benchmarks/{result.name}`).\n")
        sections.append("\n".join(text))
    return "\n".join(sections)


# ---- cross-validation -----------------------------------------------------------------------------------------------

def _plain_override(override: str) -> str:
    return override.replace("'", "")  # stage=['1','2a'] as Hydra normalises it → stage=[1,2a]


def crossval_command(summary: dict) -> str:
    """The `python -m facedyn.crossval` command line that makes a table of this shape (paths left out)."""
    args = [f"folds={summary['folds']}"]
    if summary.get("shared_stages"):
        args.append(f"share={summary['shared_stages'][-1]}")
    args += [_plain_override(o) for o in summary["common"] if o.split("=")[0].lstrip("+~") not in PLACE_AND_PACE]
    sweeps: dict[str, list[str]] = {}
    for variant in summary["variants"].values():
        for override in variant["overrides"]:
            key, _, value = _plain_override(override).partition("=")
            if value not in sweeps.setdefault(key, []):
                sweeps[key].append(value)
    args += [f"{key}={','.join(values)}" for key, values in sweeps.items()]
    return "python -m facedyn.crossval " + " ".join(shlex.quote(a) for a in args)


def crossval_section(path: Path, page: Path) -> str:
    from facedyn.crossval.summary import markdown

    summary = json.loads(path.read_text())
    shown = {**summary, "common": [o for o in summary["common"] if o.split("=")[0].lstrip("+~") not in PLACE_AND_PACE]}
    body = markdown(shown).split("\n", 1)[1].lstrip("\n")  # the command's own table, without its title
    title = path.stem.replace("_", " ").replace("-", " ")
    return "\n".join([f"### {title[:1].upper()}{title[1:]}", "",
                      f"```bash\n{crossval_command(summary)}\n```", "",
                      f"{summary['folds']} folds by video. Data: {link(path, page)}.", "", body])


DEFAULT_CROSSVAL = CROSSVAL / "trainer_grad_clip.json"  # the default pipeline


def crossval_default_block(page: Path) -> str:
    if not DEFAULT_CROSSVAL.is_file():
        return "No cross-validation of the default pipeline is committed.\n"
    section = crossval_section(DEFAULT_CROSSVAL, page).split("\n", 2)[2]  # without its heading
    return section.split("\nValidation loss per stage")[0].replace("Common overrides: `(none)`.\n", "")


def json_sections(folder: Path, section: Callable[[Path, Path], str], page: Path, none: str, first: str = "") -> str:
    """One section per committed JSON of `folder` (`first`'s stem leading, the rest by name), or `none`."""
    files = sorted(folder.glob("*.json"), key=lambda path: (path.stem != first, path.stem))
    return "\n".join(section(path, page) for path in files) if files else none


def _heading(path: Path) -> str:
    title = path.stem.replace("_", " ").replace("-", " ")
    return f"### {title[:1].upper()}{title[1:]}"


def crossval_block(page: Path) -> str:
    return json_sections(CROSSVAL, crossval_section, page, "No cross-validation results are committed.\n")


# ---- the ensemble on unseen data, the explanations' check ------------------------------------------------------

def _shown_command(command: str, folder_placeholder: str) -> str:
    """A recorded command line with its folders replaced by placeholders and out= left out."""
    words = shlex.split(command)
    shown = []
    for word in words:
        key, sep, _ = word.partition("=")
        if sep and key in ("out", "run", "root"):
            if key != "out":
                shown.append(f"{key}={folder_placeholder if key == 'run' else '<dataset>'}")
            continue
        shown.append(folder_placeholder if not sep and word.startswith("/") else word)
    return " ".join(shown)


def holdout_section(path: Path, page: Path) -> str:
    from facedyn.crossval.evaluate import markdown

    result = json.loads(path.read_text())
    body = markdown(result).split("\n", 4)[4]  # the command's own tables, without its title and folder line
    return "\n".join([_heading(path), "",
                      f"```bash\n{_shown_command(result['command'], '<cross-validation folder>')}\n```", "",
                      f"{len(result['folds'])} fold models (stage {result['stage']}) on data none of them saw: "
                      f"{result['data']['videos']} videos, {result['data']['videos_x_expressions']} videos × "
                      f"expressions. Data: {link(path, page)}.", "", body])


def holdout_block(page: Path) -> str:
    return json_sections(HOLDOUT, holdout_section, page, "No evaluation of an ensemble is committed.\n")


def explain_check_section(path: Path, page: Path) -> str:
    from facedyn.explain.check import markdown

    report = json.loads(path.read_text())
    where = re.sub(r"/\S+", "<dataset>", re.sub(r" of /\S+", "", report["data"]))  # no local folders on the page
    body = markdown({**report, "run": "<run>", "data": where})
    return "\n".join([_heading(path), "",
                      f"```bash\n{_shown_command(report['command'], '<run>')}\n```", "",
                      f"Data: {link(path, page)}.", "", body])


def explain_check_block(page: Path) -> str:
    return json_sections(EXPLAIN_CHECKS, explain_check_section, page,
                         "No result of the explanations' check is committed.\n", first="validation_videos")


# ---- the default run ---------------------------------------------------------------------------------------------

def default_run_block(page: Path) -> str:
    path = BENCHMARKS / "bench_default_run.json"
    if not path.is_file():
        return "No result of the default run is committed.\n"
    data = json.loads(path.read_text())
    quality = next(t for t in data["tables"] if t["title"].startswith("Validation split"))
    figures = data["figures"]
    minutes, seconds = divmod(round(figures["wall_seconds"]), 60)
    return "\n".join([
        table(quality["columns"], [[_cell(v) for v in row] for row in quality["rows"]]),
        f"One run of `python train.py` from an empty cache: {minutes} min {seconds} s on "
        f"{data['machine']['cpu']['model']} ({data['machine']['cpu']['cores']} cores, {figures['precision']})"
        f"{busy(data)}. Data: {link(path, page)}; the same table: "
        f"`python benchmarks/bench_default_run.py`.", ""])


# ---- the stages -------------------------------------------------------------------------------------------------

def stages_block(page: Path) -> str:
    from facedyn.conf import CONF_DIR
    from facedyn.config import compose
    from facedyn.training.stages import STAGE_ORDER, stage_key
    from facedyn.docs.config_reference import leading_comment

    cfg = compose([])
    rows = []
    for stage in STAGE_ORDER:
        spec = cfg.stages[stage_key(stage)]
        kept = f"best {spec.select_metric}" if str(spec.select) == "best" else "last"
        notes = [f"lr warm-up over the first {spec.warmup_fraction:.0%} of its steps"] if spec.warmup_fraction else []
        notes += ["frozen branches computed once"] if spec.precompute_frozen else []
        notes += ["augmented"] if spec.augment else []
        rows.append([f"`{stage}`", ", ".join(spec.trainable), str(spec.predict), f"{spec.lr:g}", spec.epochs, kept,
                     "; ".join(notes), leading_comment(CONF_DIR / "stage" / f"{stage}.yaml").split(": ", 1)[-1]])
    return table(["stage", "trains", "loss on", "lr", "epochs", "hands on", "notes", "what it is"], rows)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "benchmarks": benchmarks_block,
    "crossval": crossval_block,
    "crossval-default": crossval_default_block,
    "default-run": default_run_block,
    "explain-check": explain_check_block,
    "holdout": holdout_block,
    "stages": stages_block,
}


def render(page: Path) -> str:
    return fill_blocks(page.read_text(), {name: make(page) for name, make in BLOCKS.items()}, str(page))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed page is out of date")
    args = parser.parse_args(argv)
    pages = {REPO / page: render(REPO / page) for page in PAGES}
    return report(write_or_check(pages, args.check), args.check, COMMAND)


if __name__ == "__main__":
    sys.exit(main())
