"""facedyn as an installed package: a wheel built from this checkout carries its Hydra configs and console
scripts, and an installed copy composes and starts `facedyn-train` from any folder, with no checkout beside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from facedyn.conf import CONF_DIR
from tests.conftest import REPO

CONSOLE_SCRIPTS = ("facedyn-train", "facedyn-sweep", "facedyn-compare", "facedyn-prepare", "facedyn-predict")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel of a copy of the checkout, installed with pip into a folder of its own."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    shutil.copytree(REPO / "facedyn", source / "facedyn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"), str(source)],
                   check=True, timeout=300)
    (wheel,) = (base / "dist").glob("facedyn-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(base / "site"), str(wheel)], check=True, timeout=300)
    return base


def test_the_wheel_holds_every_config_file_and_the_console_scripts(installed: Path) -> None:
    (wheel,) = (installed / "dist").glob("facedyn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    configs = sorted(str(p.relative_to(CONF_DIR.parent.parent)) for p in CONF_DIR.rglob("*.yaml"))
    assert configs and set(configs) <= set(names), set(configs) - set(names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert all(f"{script} = " in text for script in CONSOLE_SCRIPTS), text


def test_an_installed_facedyn_composes_and_its_console_script_starts_elsewhere(installed: Path, tmp_path: Path) -> None:
    site = installed / "site"
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = subprocess.run(
        [sys.executable, "-c", "from facedyn.conf import CONF_DIR; from facedyn.config import compose; "
         "print(CONF_DIR); print(compose(['stage=2b', 'optimizer.lr=0.5']).stages.s2b.name)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    conf_dir, stage = probe.stdout.split()
    assert Path(conf_dir).is_relative_to(site) and stage == "2b"
    # Hydra's own command line (--cfg job prints the composed config and trains nothing), from the installed script.
    script = subprocess.run([str(site / "bin" / "facedyn-train"), "--cfg", "job", "stage=1", "seed=7"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0, script.stderr
    assert "seed: 7" in script.stdout and "s1:" in script.stdout and "s2a:" not in script.stdout
    assert not (tmp_path / "outputs").exists()
    prepare = subprocess.run([str(site / "bin" / "facedyn-prepare"), "--cfg", "job", "videos=/clips", "out=/dataset"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert prepare.returncode == 0, prepare.stderr
    assert "videos: /clips" in prepare.stdout and "method: dis" in prepare.stdout
