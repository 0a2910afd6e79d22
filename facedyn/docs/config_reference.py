"""docs/configuration-reference.md: every setting of every command, with its type, default and meaning.

    python -m facedyn.docs.config_reference [--check]

Each command's config is composed the way the command composes it, so a default is what a run gets (a
config group's choice included). The composed config is walked node by node: OmegaConf knows the
dataclass behind each node, and that class's source gives each field's type and meaning — the comment
on the field's line, else the comment lines right above it, else the `name: meaning` part of the class
docstring, else the comment beside the key in the command's YAML file. No schema class is named here,
so the page follows the classes wherever they live.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import inspect
import io
import re
import sys
import textwrap
import tokenize
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from facedyn.docs.pages import DOCS, report, table, write_or_check

PAGE = DOCS / "configuration-reference.md"
COMMAND = "python -m facedyn.docs.config_reference"


# ---- meanings from the source ---------------------------------------------------------------------------------

def _comment_text(lines: list[str]) -> str:
    return " ".join(line.strip().lstrip("#").strip() for line in lines).strip()


def class_source(cls: type) -> str:
    try:
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # a class without source (built in, or made at run time)
        return ""


@cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: meaning} from the comments in `cls`'s source: on the field's line, else right above it."""
    source = class_source(cls)
    if not source:
        return {}
    comments: dict[int, str] = {}  # line number → comment text
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    found = {}
    (body,) = ast.parse(source).body
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
            above, line = [], node.lineno - 1
            while line in comments and line not in code_lines:
                above.insert(0, comments[line])
                line -= 1
            text = _comment_text(trailing) or _comment_text(above)
            if text:
                found[node.target.id] = text
    return found


def own_doc(cls: type) -> str:
    """`cls`'s docstring, not the signature dataclasses write when it has none."""
    doc = cls.__doc__ or ""
    return "" if doc.startswith(cls.__name__ + "(") else doc


@cache
def docstring_meanings(cls: type) -> dict[str, str]:
    """{field: meaning} from `name: meaning` (or `a / b: meaning`) parts of `cls`'s docstring."""
    doc = " ".join(own_doc(cls).split())
    names = "|".join(re.escape(f.name) for f in dataclasses.fields(cls))
    if not names:
        return {}
    head = re.compile(rf"(?<![\w.])((?:{names})(?:\s*/\s*(?:{names}))*):\s")
    matches = list(head.finditer(doc))
    found = {}
    for match, following in zip(matches, [*matches[1:], None]):
        text = doc[match.end(): following.start() if following else len(doc)].strip().rstrip(";.").strip()
        for name in re.split(r"\s*/\s*", match[1]):
            found[name] = text
    return found


def class_summary(cls: type) -> str:
    """The first paragraph of a class docstring, on one line (dataclasses' generated signature excluded)."""
    return " ".join(own_doc(cls).strip().split("\n\n")[0].split())


def yaml_comments(path: Path) -> dict[str, str]:
    """{dotted key: the comment beside it} of a YAML file written as `key: value  # comment`."""
    found, stack = {}, []  # stack: (indent, key)
    for line in path.read_text().splitlines():
        match = re.match(r"^(?P<indent>\s*)(?P<key>[\"']?[\w.-]+[\"']?):(?P<rest>.*)$", line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"].strip("\"'")))
        comment = re.search(r"\s#\s*(.*)$", match["rest"])
        if comment:
            found[".".join(key for _, key in stack)] = comment[1].strip()
    return found


# ---- types and values -----------------------------------------------------------------------------------------

def type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(type_name(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin in (list, tuple, typing.Sequence):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {type_name(args[0])} → {type_name(args[1])}" if args else "mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return " | ".join(str(m.value) for m in hint)
    if hint is Any:
        return "any"
    return getattr(hint, "__name__", str(hint))


def enum_meaning(hint: Any) -> str:
    """`a: …; b: …` from an enum's member comments (for a field that has no comment of its own)."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            members = _member_comments(candidate)
            parts = [f"{m.value}: {members[m.name]}" if m.name in members else str(m.value) for m in candidate]
            summary = class_summary(candidate)
            if members or summary:
                return (summary + " " if summary else "") + "; ".join(parts)
    return ""


@cache
def _member_comments(cls: type) -> dict[str, str]:
    found = {}
    for line in class_source(cls).splitlines():
        match = re.match(r"^\s+(\w+)\s*=.*?#\s*(.*)$", line)
        if match:
            found[match[1]] = match[2].strip()
    return found


def value_text(node: Any, key: str) -> str:
    if isinstance(node, DictConfig) and node._get_node(key)._is_missing():
        return "required"
    value = node[key]
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    return "`" + _plain(value) + "`"


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    return str(value)


# ---- walking a composed config --------------------------------------------------------------------------------

@dataclass
class Row:
    key: str
    type: str
    default: str
    meaning: str


@dataclass
class Section:
    key: str  # dotted prefix ("" for the top level)
    summary: str
    rows: list[Row]


def schema_of(node: DictConfig) -> type | None:
    cls = OmegaConf.get_type(node)
    return cls if dataclasses.is_dataclass(cls) else None


def meaning(cls: type, name: str, hint: Any, yaml: dict[str, str], key: str) -> str:
    return (field_comments(cls).get(name) or docstring_meanings(cls).get(name) or yaml.get(key)
            or enum_meaning(hint) or "")


def walk(node: DictConfig, prefix: str = "", yaml: dict[str, str] | None = None,
         skip: tuple[str, ...] = (), refer: dict[str, str] | None = None) -> Iterator[Section]:
    """The sections of a structured config: its own scalar fields, then each nested dataclass node. A key in
    `refer` is one row pointing to where its section is described (another command's section)."""
    yaml, refer = yaml or {}, refer or {}
    cls = schema_of(node)
    hints = typing.get_type_hints(cls)
    rows, nested = [], []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        if key in skip:
            continue
        if key in refer:
            rows.append(Row(f"{key}.*", "section", "—",
                            f"{meaning(cls, field.name, hints[field.name], yaml, key)} Keys: {refer[key]}."))
            continue
        child = node._get_node(field.name)
        if isinstance(child, DictConfig) and not child._is_missing() and schema_of(child) is not None \
                and not _is_mapping(hints[field.name]):
            nested.append((field.name, child))
            continue
        rows.append(Row(key, type_name(hints[field.name]), value_text(node, field.name),
                        meaning(cls, field.name, hints[field.name], yaml, key)))
        value_type = _mapping_value_schema(hints[field.name])
        if value_type is not None:  # a mapping of named entries (sweep.params): the entries' own keys
            entry = OmegaConf.structured(value_type)
            nested.append((f"{field.name}.<name>", entry))
    yield Section(prefix.rstrip("."), class_summary(cls), rows)
    for name, child in nested:
        yield from walk(child, f"{prefix}{name}.", yaml, skip, refer)


def _is_mapping(hint: Any) -> bool:
    return typing.get_origin(hint) is dict


def _mapping_value_schema(hint: Any) -> type | None:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1]
    return None


def section_markdown(section: Section, level: int, anchor: str) -> str:
    title = f"`{section.key}.*`" if section.key else "Top level"
    slug = re.sub(r"[^\w]+", "-", f"{anchor}-{section.key or 'top'}").strip("-")
    text = f"{'#' * level} {title} {{#{slug}}}\n\n"
    if section.summary:
        text += section.summary + "\n\n"
    rows = [(f"`{row.key}`", row.type, row.default, row.meaning or "—") for row in section.rows]
    return text + table(["key", "type", "default", "meaning"], rows)


def stage_rows(cfg: DictConfig) -> tuple[list[str], list[list[str]]]:
    """The stages' settings side by side (conf/stage/*.yaml): the stage keys, and one row per setting."""
    stages = list(cfg.stages)
    first = cfg.stages[stages[0]]
    cls = schema_of(first)
    hints = typing.get_type_hints(cls)
    rows = []
    for field in dataclasses.fields(cls):
        nodes = [cfg.stages[key] for key in stages]
        child = first._get_node(field.name)
        if isinstance(child, DictConfig) and schema_of(child) is not None:  # loss_weights: one row per weight
            inner = schema_of(child)
            inner_hints = typing.get_type_hints(inner)
            for sub in dataclasses.fields(inner):
                values = [value_text(node[field.name], sub.name).strip("`") for node in nodes]
                rows.append([f"`{field.name}.{sub.name}`", type_name(inner_hints[sub.name]), *values,
                             meaning(inner, sub.name, inner_hints[sub.name], {}, sub.name)
                             or meaning(cls, field.name, hints[field.name], {}, field.name) or "—"])
            continue
        values = [value_text(node, field.name).strip("`") for node in nodes]
        rows.append([f"`{field.name}`", type_name(hints[field.name]), *values,
                     meaning(cls, field.name, hints[field.name], {}, field.name) or "—"])
    return stages, rows


def stage_matrix(cfg: DictConfig) -> str:
    stages, rows = stage_rows(cfg)
    return table(["key", "type", *[f"`{k}`" for k in stages], "meaning"], rows)


# ---- config groups ----------------------------------------------------------------------------------------------

def leading_comment(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line)
    text = _comment_text(lines)
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0] if text else ""


def option_settings(path: Path) -> str:
    node = OmegaConf.load(path)
    if not isinstance(node, DictConfig):
        return ""
    values = {k: v for k, v in OmegaConf.to_container(node, resolve=False).items() if k not in ("defaults", "hydra")}
    flat = []

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                add(f"{prefix}{k}.", v)
        elif value == "???":
            flat.append(f"{prefix.rstrip('.')} (required)")
        else:
            flat.append(f"{prefix.rstrip('.')}={_plain(value)}")

    add("", values)
    bases = [d for d in (node.get("defaults") or []) if isinstance(d, str) and d != "_self_"]
    return ", ".join([*(f"starts from `{b}`" for b in bases), *(f"`{f}`" for f in flat)])


def groups_markdown(conf_dir: Path, defaults: list) -> str:
    rows = []
    for entry in defaults:
        entry = OmegaConf.to_container(entry) if isinstance(entry, DictConfig) else entry
        if not isinstance(entry, dict):
            continue
        ((group, default),) = entry.items()
        folder = conf_dir / group
        for option in sorted(folder.glob("*.yaml"), key=lambda p: (p.stem != str(default), p.stem)):
            settings = "see the stage table below" if group == "stage" else option_settings(option)
            rows.append([f"`{group}`", f"`{option.stem}`" + (" (default)" if option.stem == str(default) else ""),
                         leading_comment(option) or "—", settings or "—"])
    return table(["group", "option", "what it is", "what it sets"], rows)


# ---- the page -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    title: str
    anchor: str
    usage: str
    compose: Callable[[], DictConfig]
    yaml: Path | None = None  # the command's YAML file, for comments on keys the schema leaves bare
    refer: dict[str, str] = dataclasses.field(default_factory=dict)  # sections described under another command


def _train() -> DictConfig:
    from facedyn.config import compose

    return compose([])


def _predict() -> DictConfig:
    from facedyn.inference.config import compose_predict

    return compose_predict([])


def _prepare() -> DictConfig:
    from hydra import compose, initialize_config_module

    from facedyn.videos.config import register_configs

    register_configs()
    with initialize_config_module(config_module="facedyn.conf", version_base="1.3"):
        return compose(config_name="prepare")


def _sweep() -> DictConfig:
    from facedyn.sweep.config import load

    return load()


def _crossval() -> DictConfig:
    from facedyn.crossval.plan import CrossvalOptions

    return OmegaConf.structured(CrossvalOptions)


def _export() -> DictConfig:
    from facedyn.export.graph import ExportConfig

    return OmegaConf.structured(ExportConfig)


def commands() -> list[Command]:
    from facedyn.conf import CONF_DIR

    return [
        Command("Training: `train.py`", "training", "python train.py [group=option ...] [key=value ...]", _train),
        Command("Cross-validation: `python -m facedyn.crossval`", "cross-validation",
                "python -m facedyn.crossval folds=5 [share=STAGE] [out=DIR] [train.py overrides ...]", _crossval),
        Command("Sweeps: `sweep.py`", "sweeps", "python sweep.py [sweep=NAME] [sweep.KEY=VALUE ...] [train.py overrides ...]",
                _sweep, CONF_DIR / "sweep" / "default.yaml"),
        Command("Preparing videos: `prepare.py`", "preparing-videos",
                "python prepare.py videos=DIR out=DIR [grades=FILE] [key=value ...]", _prepare),
        Command("Prediction: `predict.py`", "prediction", "python predict.py [run=RUN] [data.root=DIR | videos=DIR] [key=value ...]",
                _predict, CONF_DIR / "predict" / "predict.yaml",
                {"data": "as [`train.py`'s `data.*`](#training-data)", "prepare": "as [`prepare.py`'s](#preparing-videos)"}),
        Command("Export: `python -m facedyn.export`", "export", "python -m facedyn.export [run=RUN] [out=FILE] [key=value ...]",
                _export),
    ]


INTRO = """\
# Configuration reference

<!-- Rendered by `python -m facedyn.docs.config_reference` from the config schemas and facedyn/conf/; do not edit. -->

Every setting of every command: its key, type, default (what the command composes when the key is not
given) and meaning. Set any of them on the command line as `key=value`; see
[Configuration](configuration.md) for the override syntax, config groups and multiruns.
"""


def render() -> str:
    from facedyn.conf import CONF_DIR

    parts = [INTRO]
    parts.append("Commands: " + ", ".join(f"[{c.title.split(':')[0]}](#{c.anchor})" for c in commands()) + ".\n")
    for command in commands():
        cfg = command.compose()
        yaml = yaml_comments(command.yaml) if command.yaml else {}
        parts.append(f"## {command.title} {{#{command.anchor}}}\n\n```\n{command.usage}\n```\n")
        if command.anchor == "training":
            defaults = OmegaConf.load(CONF_DIR / "train.yaml").defaults
            parts.append("### Config groups {#training-groups}\n\nPick one option per group as `group=option`; an option's file holds only "
                         "what differs from the schema's defaults.\n\n" + groups_markdown(CONF_DIR, list(defaults)))
            parts.append("### Stages (`stages.s<stage>.*`) {#training-stages}\n\nOne column per stage of `stage=all`, from "
                         "`facedyn/conf/stage/<stage>.yaml`; set one as `stages.s2b.lr=3e-4`.\n\n" + stage_matrix(cfg))
        for section in walk(cfg, yaml=yaml, skip=("stages",), refer=command.refer):
            if section.rows:
                parts.append(section_markdown(section, 3, command.anchor))
    return "\n".join(parts)


def missing_meanings() -> list[str]:
    """Keys whose meaning no schema comment, docstring or YAML comment gives (the test keeps this empty)."""
    missing = []
    for command in commands():
        cfg = command.compose()
        yaml = yaml_comments(command.yaml) if command.yaml else {}
        for section in walk(cfg, yaml=yaml, skip=("stages",), refer=command.refer):
            missing += [f"{command.anchor}: {row.key}" for row in section.rows if not row.meaning]
        if command.anchor == "training":
            missing += [f"{command.anchor}: stages.<s>.{row[0].strip('`')}" for row in stage_rows(cfg)[1] if row[-1] == "—"]
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed page is out of date")
    args = parser.parse_args(argv)
    stale = write_or_check({PAGE: render()}, args.check)
    return report(stale, args.check, COMMAND)


if __name__ == "__main__":
    sys.exit(main())


