"""The documentation's commands work: every facedyn command line in README.md and docs/*.md composes its
config (a renamed or misspelt setting fails here), the README's quick start runs on the session's tiny run,
and its clinic path — videos → prepare → train → predict → report → export — runs end to end on tiny clips
(slow). The README blocks a test runs are the fenced blocks after a `<!-- docs-test: NAME -->` line."""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO, TINY_STAGE_EPOCHS, tiny_epochs

README = REPO / "README.md"
FENCE = re.compile(r"^```(?:bash|console|sh)\n(?P<body>.*?)^```", re.S | re.M)
MARKED = re.compile(r"<!-- docs-test: (?P<name>[\w-]+) -->\n```bash\n(?P<body>.*?)^```", re.S | re.M)
# Values a reader substitutes: a run folder's time stamp, shell variables.
PLACEHOLDERS = {"<time>": "2026-01-01_00-00-00", "$STORAGE": "sqlite:///study.db"}
SCRIPTS = {"train.py": "train", "predict.py": "predict", "prepare.py": "prepare", "sweep.py": "sweep",
           "facedyn.crossval": "crossval", "facedyn.export": "export"}


def command_lines(text: str) -> list[str]:
    """The shell lines of a fenced block: continuations joined, comment lines and blank lines dropped."""
    lines, current = [], ""
    for line in text.splitlines():
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if current.strip() and not current.lstrip().startswith("#"):
                lines.append(current.strip())
            current = ""
    return lines


def argv(line: str) -> list[str]:
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    return shlex.split(line, comments=True)


def facedyn_command(words: list[str]) -> tuple[str, list[str]] | None:
    """(which command, its key=value arguments) of a facedyn command line; None for anything else."""
    if len(words) > 1 and words[0].endswith("python") and words[1] == "-m":
        script, rest = words[2], words[3:]
    elif len(words) > 1 and words[0].endswith("python"):
        script, rest = words[1], words[2:]
    else:
        return None
    kind = SCRIPTS.get(script)
    if kind is None:
        return None
    args = [w for w in rest if not w.startswith("-")]  # -m, --cfg job, --help: Hydra's own flags
    if "--cfg" in rest:
        args = [w for w in args if w not in ("job", "hydra", "all")]
    if kind == "train":  # Hydra's own settings (hydra/launcher=slurm, hydra.launcher.*) are not the run's config
        args = [w for w in args if not w.lstrip("+~").startswith("hydra")]
    return kind, args


def single_runs(args: list[str]) -> list[list[str]]:
    """A multirun's argument lists: every value of each swept key once, the other keys at their first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(args)
    first = [o.input_line if not o.is_sweep_override() else f"{o.get_key_element()}={next(o.sweep_string_iterator())}"
             for o in parsed]
    runs = [first]
    for i, override in enumerate(parsed):
        if override.is_sweep_override():
            runs += [[*first[:i], f"{override.get_key_element()}={value}", *first[i + 1:]]
                     for value in list(override.sweep_string_iterator())[1:]]
    return runs


def documented_commands() -> list[tuple[str, str]]:
    """(where, line) of every facedyn command in a bash block of README.md and docs/*.md."""
    found = []
    seen = set()
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for block in FENCE.finditer(page.read_text()):
            for line in command_lines(block["body"]):
                if " [" in line and "]" in line and "--" in line:
                    continue  # a usage synopsis, `[--batch 256]`
                words = argv(line)
                if facedyn_command(words) is not None and " ".join(words) not in seen:
                    seen.add(" ".join(words))
                    found.append((page.name, line))
    return found


def compose_check(kind: str, args: list[str]) -> None:
    """Compose the config the command would run with: unknown keys, wrong types and bad options raise."""
    from facedyn.config import compose

    if kind == "train":
        from facedyn.config import normalize_overrides

        for run in single_runs(normalize_overrides(args)):
            compose(run)
    elif kind == "predict":
        from facedyn.inference.config import compose_predict

        compose_predict(args)
    elif kind == "prepare":
        from hydra import compose as hydra_compose
        from hydra import initialize_config_module

        from facedyn.videos.config import as_config, register_configs

        register_configs()
        with initialize_config_module(config_module="facedyn.conf", version_base="1.3"):
            as_config(hydra_compose(config_name="prepare", overrides=args))
    elif kind == "sweep":
        from facedyn.sweep.config import split_args

        compose(split_args(args).train_overrides)
    elif kind == "crossval":
        from facedyn.crossval import plan

        crossval = plan.parse_args(args)
        for variant in crossval.variants:
            crossval.variant_stages(variant)
    elif kind == "export":
        from facedyn.export.graph import ExportConfig

        OmegaConf.merge(OmegaConf.structured(ExportConfig), OmegaConf.from_dotlist(args))


DOCUMENTED = documented_commands()


def test_the_docs_show_every_command_and_the_readme_names_every_console_script() -> None:
    kinds = {facedyn_command(argv(line))[0] for _, line in DOCUMENTED}
    assert kinds == set(SCRIPTS.values())
    setup = (REPO / "setup.cfg").read_text()
    scripts = re.findall(r"^\s+(facedyn-[\w-]+) = ", setup, re.M)
    readme = README.read_text()
    assert scripts and all(f"`{script}`" in readme for script in scripts), scripts


@pytest.mark.parametrize("where, line", DOCUMENTED, ids=[f"{w}: {line[:60]}" for w, line in DOCUMENTED])
def test_a_documented_command_composes(where: str, line: str) -> None:
    kind, args = facedyn_command(argv(line))
    compose_check(kind, args)


def marked_block(name: str) -> list[list[str]]:
    blocks = {m["name"]: m["body"] for m in MARKED.finditer(README.read_text())}
    assert name in blocks, f"README.md has no `<!-- docs-test: {name} -->` block"
    return [argv(line) for line in command_lines(blocks[name])]


def _run(words: list[str], cwd: Path, extra: list[str] = (), env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    python = [sys.executable] + (["-m"] if words[1] == "-m" else [])
    script = words[2] if words[1] == "-m" else str(REPO / words[1])
    rest = words[3:] if words[1] == "-m" else words[2:]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    result = subprocess.run([*python, script, *rest, *extra], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{' '.join(words)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _report_path(words: list[str], cwd: Path) -> Path:
    """The file an `xdg-open <path>` line opens, its <time> being the newest prediction folder."""
    assert words[0] in ("xdg-open", "open"), words
    pattern = words[1].replace(PLACEHOLDERS["<time>"], "*")
    matches = sorted(cwd.glob(pattern))
    assert matches, f"{words[1]}: nothing there"
    return matches[-1]


def test_the_quick_start_runs(tiny_train_py_run, tmp_path: Path) -> None:
    """`make train` is the session's tiny train.py run (the Makefile's recipe is train.py); the rest runs
    as written, in a folder whose outputs/ holds that run."""
    commands = marked_block("quickstart")
    assert commands[0] == ["make", "train"]
    assert re.search(r"^train: .*\n\t\$\(PY\) train\.py \$\(ARGS\)$", (REPO / "Makefile").read_text(), re.M)
    # The run, hard-linked (a copy without the bytes): outputs/ is where the README's commands look.
    shutil.copytree(tiny_train_py_run.run_dir, tmp_path / "outputs" / "runs" / tiny_train_py_run.run_dir.name,
                    copy_function=os.link, ignore=shutil.ignore_patterns(".lock"))
    for words in commands[1:]:
        if words[0].endswith("python"):
            _run(["python", *words[1:]], tmp_path)
        else:
            report = _report_path(words, tmp_path)
            assert "<html" in report.read_text()[:500].lower()


GRADES = [("p1", "smile", 3, 1), ("p1", "eye_close", 4, 0), ("p2", "smile", 2, 2), ("p2", "eye_close", 5, 0),
          ("p3", "smile", 4, 0), ("p3", "eye_close", 3, 1), ("p4", "smile", 1, 2), ("p4", "eye_close", 2, 1),
          ("p5", "smile", 5, 0), ("p5", "eye_close", 4, 1)]


def _clinic(root: Path) -> None:
    """/data/clips with a grading sheet, /data/new_clips without: the astronaut smiling or closing an eye."""
    from tests.face_videos import CLOSE_LEFT_EYE, SMILE_RIGHT, FaceClip

    clip = FaceClip()
    warps = {"smile": SMILE_RIGHT, "eye_close": CLOSE_LEFT_EYE}
    for patient, expression, _, _ in GRADES:
        clip.write(root / "clips" / patient / f"{expression}.mp4", warps[expression], head_motion=patient in ("p2", "p4"))
    for patient in ("q1", "q2"):
        clip.write(root / "new_clips" / patient / "smile.mp4", SMILE_RIGHT)
    with open(root / "grades.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patient", "expression", "dynamics", "synkinesis"])
        writer.writerows(GRADES)


@pytest.mark.slow  # prepares clips with MediaPipe, trains five stages, predicts twice and exports: minutes
def test_the_clinic_path_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _clinic(data)
    tiny_train = [f"data.cache_dir={tmp_path / 'cache'}", "model.flow.weights=none", "trainer.progress=false",
                  "trainer.threads=2", "data.batch_size=4", *tiny_epochs(TINY_STAGE_EPOCHS)]
    for words in marked_block("clinic"):
        words = [w.replace("/data/", f"{data}/") for w in words]
        if words[0] in ("xdg-open", "open"):
            report = _report_path(words, tmp_path)
            assert all(patient in report.read_text() for patient in ("q1", "q2"))
            continue
        kind, _ = facedyn_command(words)
        extra = tiny_train if kind == "train" else ["progress=false"] if kind == "prepare" else []
        _run(words, tmp_path, extra, env={"FACEDYN_CACHE_DIR": str(tmp_path / "cache")})
    assert (data / "dataset" / "prepare_report.csv").is_file()
    assert (tmp_path / "facedyn.onnx").stat().st_size > 1_000_000
    onnx_run = max((tmp_path / "outputs" / "predictions").iterdir())
    with open(onnx_run / "predictions_video.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(GRADES)
