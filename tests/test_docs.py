"""The documentation's generated pages are current: each is what its renderer makes of today's code and data."""

from __future__ import annotations

import json
import shlex
import sys

from facedyn.crossval.plan import parse_args
from facedyn.crossval.summary import markdown
from facedyn.docs import config_reference, render
from facedyn.docs.pages import DOCS, REPO


def test_every_setting_has_a_one_line_meaning() -> None:
    assert config_reference.missing_meanings() == []


def test_the_configuration_reference_is_current() -> None:
    page = config_reference.PAGE
    assert page.read_text() == config_reference.render(), (
        f"{page.name} is out of date: run `python -m facedyn.docs.config_reference`")


def test_every_rendered_page_is_current() -> None:
    stale = [page for page in render.PAGES if (REPO / page).read_text() != render.render(REPO / page)]
    assert not stale, f"{stale} out of date: run `python -m facedyn.docs.render`"


def test_a_crossval_json_renders_as_the_command_prints_it() -> None:
    """The tiny cross-validation of tests/test_crossval.py: the table rows are the command's own, the command
    line shown makes a table of this shape, and the machine's paths are left out."""
    path = REPO / "tests" / "data" / "crossval_tiny.json"
    summary = json.loads(path.read_text())
    section = render.crossval_section(path, DOCS / "results.md")
    rows = [line for line in markdown(summary).splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 2 * 4 + 2 + 2 and all(row in section.splitlines() for row in rows)
    command = render.crossval_command(summary)
    assert command == ("python -m facedyn.crossval folds=2 share=1 model.flow.weights=none data.synthetic.videos=10 "
                       "data.synthetic.frames_per_video=2 data.batch_size=16 stages.s1.epochs=1 stages.s2a.epochs=2 "
                       "stages.s2b.epochs=1 stages.s3.epochs=2 model=seed,paired_expression 'stage=[1,2a,2b,3]'")
    assert f"```bash\n{command}\n```" in section and "/tmp" not in section
    assert "[`crossval_tiny.json`](../tests/data/crossval_tiny.json)" in section
    plan = parse_args(shlex.split(command)[3:])  # the command line is one the command accepts
    assert plan.folds == 2 and [v.label for v in plan.variants] == list(summary["variants"])


def test_a_benchmark_recording_renders_its_tables_machine_and_commit(tmp_path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from record import Recording
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    rec = Recording("Samples/s of something.\n\nMore.", name="bench_example")
    rec.table("Speed", ["backend", "samples/s"], [["torch", 1234.5], ["onnx", 99]])
    rec.note("a note")
    data = json.loads(rec.save(tmp_path).read_text())
    assert data["machine"]["cpu"]["cores"] >= 1 and len(data["load_before"]) == len(data["load_after"]) == 3
    assert data["code"]["commit"] and data["machine"]["torch"]
    text = render.benchmark_result(tmp_path / "bench_example.json", DOCS / "benchmarks.md")
    assert "| backend | samples/s |\n|---|---|\n| torch | 1,234 |\n| onnx | 99 |" in text
    assert "a note" in text and f"commit {data['code']['commit'][:10]}" in text
    shared = data["load_before"][0] > data["machine"]["cpu"]["cores"]
    assert ("other work shared the cores" in text) == shared  # said only of a result taken on a busy machine
