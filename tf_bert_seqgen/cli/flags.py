"""Command-line flags made from a dataclass's fields, so that a config's types, defaults and help are
written once (in the dataclass and its "Attributes:" docstring) and the command line follows them.

    add_field_flags(parser, TrainingConfig, ["steps", "batch_size"])  # --steps, --batch-size
    TrainingConfig(**field_values(args, TrainingConfig, ["steps", "batch_size"]))
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _flag_type(annotation):
    """A field's annotation (a class, `X | None`, or either as a string under `from __future__ import
    annotations`) -> int, float, str or bool."""
    if not isinstance(annotation, str):
        annotation = " | ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(annotation)) or \
            annotation.__name__
    kinds = [_TYPES[part] for part in annotation.split(" | ") if part not in ("None", "NoneType")]
    if len(kinds) != 1:
        raise TypeError(f"no flag type for the annotation {annotation!r}")
    return kinds[0]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def field_help(cls) -> dict[str, str]:
    """name -> description, from the "Attributes:" section of `cls`'s Google-style docstring
    ("name: type. Description", continued on more-indented lines)."""
    doc = inspect.getdoc(cls) or ""
    section = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)*)", doc, re.MULTILINE)
    found, name = {}, None
    for line in (section.group(1) if section else "").splitlines():
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            name = entry.group(1)
            found[name] = entry.group(2)
        elif name and line.startswith("        "):
            found[name] += " " + line.strip()
    # "int. Optimizer updates." -> "Optimizer updates."
    return {k: re.sub(r"^[\w |\[\],]+?(?: or None)?\. ", "", v) for k, v in found.items()}


def add_field_flags(parser, cls, names, *, defaults: bool = True, **options):
    """Adds a flag per field of dataclass `cls` in `names`: `--field-name`, typed as the field, defaulting
    to the field's default (`defaults=False`: to None, "not given"), helped by its docstring. A bool field
    becomes `--name / --no-name`. `options`: name -> extra `add_argument` keywords (choices, help, flags)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    helps = field_help(cls)
    for name in names:
        field = fields[name]
        kwargs = dict(options.get(name, {}))
        flags = kwargs.pop("flags", [flag_name(name)])
        kind = _flag_type(field.type)
        if kind is bool:
            kwargs.setdefault("action", argparse.BooleanOptionalAction)
        else:
            kwargs.setdefault("type", kind)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kwargs.setdefault("default", default if defaults else None)
        help_text = kwargs.pop("help", helps.get(name, ""))
        if defaults and kwargs["default"] is not None:
            help_text = f"{help_text} (default: %(default)s)".strip()
        parser.add_argument(*flags, dest=name, help=help_text, **kwargs)


def field_values(args, cls, names, given_only: bool = False) -> dict:
    """{name: args.<name>} for the fields `names` of `cls` (checked to be its fields); `given_only`: only
    those not None."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(names) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    values = {name: getattr(args, name) for name in names}
    return {k: v for k, v in values.items() if v is not None} if given_only else values
