"""The config reference (docs/config.md), generated from the config dataclasses themselves.

Every key's documentation is the string literal written after its field (cluster/config.py,
actors/config.py, learner/config.py, learner/arch.py, league/config.py), read from the source with
`ast`, so the reference cannot drift from the code: tests/test_config_doc.py fails when
docs/config.md differs from what this module renders. Regenerate it with

    python -m cluster.run.config_doc > docs/config.md      (or: selfplay config doc > docs/config.md)
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
import typing
from typing import Any

import yaml

from cluster.config import Config

HEADER = """\
# Config reference

Every key of a run's YAML config, with its type, its default and what it does. A config file holds
only the keys it changes; `selfplay config show CONFIG` prints the whole config with every default
filled in, checked as `selfplay train` checks it. Any key can be overridden on the command line:
`--set ppo.lr=1e-3`, `--set 'model.hidden_sizes=[256, 256]'` (values are YAML; only `true` and
`false` are booleans). An unknown key, or a value of the wrong type, is an error that names the key.

This file is generated from the config dataclasses (`python -m cluster.run.config_doc >
docs/config.md`); edit the documentation where each field is declared, not here.
"""


def field_docs(cls: type) -> dict[str, str]:
    """{field name: the string literal right after its declaration} for a dataclass `cls`."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # the class statement's body
    docs = {}
    for stmt, after in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def type_name(tp: Any) -> str:
    """How a YAML writer sees an annotation: a number, a list of strings, a mapping..."""
    if tp is tuple or typing.get_origin(tp) is tuple:
        return "list of strings" if typing.get_args(tp)[:1] == (str,) else "list of integers"
    if tp is dict or typing.get_origin(tp) is dict:
        return "mapping"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(tp, str(tp))


def default_of(f: dataclasses.Field) -> Any:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return list(value) if isinstance(value, tuple) else value


def yaml_value(value: Any) -> str:
    """A default as it would be written in a config file (one line, flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """docs/config.md: one section per config section, one row per key."""
    out = [HEADER]
    sections = dataclasses.fields(Config)
    out.append("Sections: " + ", ".join(f"[`{s.name}`](#{s.name})" for s in sections) + ".\n")
    hints_of_config = typing.get_type_hints(Config)
    for section in sections:
        cls = hints_of_config[section.name]
        module = inspect.getsourcefile(cls)
        where = module.split("/")[-2] + "/" + module.split("/")[-1] if module else "?"
        out.append(f"## {section.name}\n")
        out.append(f"`{cls.__name__}` in `{where}`.\n")
        out.append("| key | type | default | what it does |")
        out.append("| --- | --- | --- | --- |")
        docs, hints = field_docs(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            doc = docs.get(f.name)
            if doc is None:
                raise ValueError(f"{cls.__name__}.{f.name} has no documentation: write a string literal after the field")
            key = f"{section.name}.{f.name}"
            out.append(f"| `{key}` | {type_name(hints[f.name])} | `{_cell(yaml_value(default_of(f)))}` | {_cell(doc)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
