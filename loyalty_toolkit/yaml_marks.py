"""Where a config error is: the line and column of a field in the YAML text, from the loader's marks.

``config`` validates the parsed YAML; this module reads the text (bytes that are not UTF-8 named by
line and column, a nesting too deep for the parser named as such) and maps a field path such as
``sources.members.encoding`` or ``sources.rewards.files.0`` back to the node it came from, so every
config error can say ``migration.yml:9: column 16: ...``.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import yaml

from loyalty_toolkit.errors import ConfigError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Nesting deeper than this is refused before parsing: PyYAML recurses once per level and a few
# thousand levels exhaust Python's stack. No migration config needs more than a handful.
MAX_DEPTH = 100


def decode_config(data: bytes, name: str) -> str:
    """The config text; bytes that are not UTF-8 raise ConfigError at their line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line = len(_LINE_BREAK.findall(prefix)) + 1
        column = len(prefix) - max(prefix.rfind("\n"), prefix.rfind("\r"))
        raise ConfigError(f"not UTF-8 (byte 0x{data[exc.start]:02x}); save the config as UTF-8", file=name,
                          line=line, column=column) from None


def load_yaml(text: str, name: str) -> Any:
    """``yaml.safe_load`` with every failure a one-line ConfigError at the loader's mark."""
    _check_depth(text, name)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", file=name, line=line, column=col) from None
    except ValueError as exc:  # a scalar YAML reads as a date or time that does not exist (2026-13-01)
        line, col = _bad_date_position(text)
        raise ConfigError(f"not valid YAML: {exc}", file=name, line=line, column=col) from None
    except RecursionError:
        raise ConfigError(f"not valid YAML: nested too deeply (more than {MAX_DEPTH} levels)", file=name) from None


def _check_depth(text: str, name: str) -> None:
    """Refuse flow or block nesting deeper than MAX_DEPTH, at the line and column where it goes over."""
    depth = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if stripped and not stripped.startswith("#") and indent // 2 > MAX_DEPTH:
            raise ConfigError(f"nested too deeply (more than {MAX_DEPTH} levels)", file=name, line=line_no,
                              column=indent + 1)
        for col, ch in enumerate(line, start=1):
            if ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(f"nested too deeply (more than {MAX_DEPTH} levels)", file=name,
                                      line=line_no, column=col)
            elif ch in "]}":
                depth = max(depth - 1, 0)


def _bad_date_position(text: str) -> tuple[int | None, int | None]:
    """The first scalar that looks like a date but is not one (yaml's date resolver raised on it)."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        m = re.search(r"(?<![\w-])\d{4}-\d{1,2}-\d{1,2}(?![\w-])", line)
        if m:
            try:
                yaml.safe_load(m.group())
            except ValueError:
                return line_no, m.start() + 1
    return None, None


def field_position(text: str, loc: tuple[Any, ...], *, key: bool = False) -> tuple[int | None, int | None]:
    """1-based line and column of the node at ``loc`` (mapping keys and sequence indexes) in YAML
    ``text``: its value, or its key with ``key=True`` (an unknown field). A path that goes further
    than the text (a required field that is missing) gives the deepest node that exists."""
    try:
        node = yaml.compose(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return None, None
    if node is None:
        return None, None
    found = node
    key_node = None
    for part in loc:
        if isinstance(found, yaml.MappingNode):
            pair = next(((k, v) for k, v in found.value if getattr(k, "value", None) == str(part)), None)
            if pair is None:
                break
            key_node, found = pair
        elif isinstance(found, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(found.value):
            key_node, found = None, found.value[part]
        else:
            break
    target = key_node if key and key_node is not None else found
    return target.start_mark.line + 1, target.start_mark.column + 1


def placed(exc: ConfigError, text: str) -> ConfigError:
    """``exc`` with the line and column of its field (``sources.rewards.files.0``) in the config text."""
    if exc.field and exc.line is None:
        parts = tuple(int(p) if p.isdigit() else p for p in exc.field.split("."))
        exc.line, exc.column = field_position(text, parts)
    return exc


def check_directory(root: Path, text: str, name: str, loc: tuple[str, ...]) -> None:
    """``root`` must be a directory or not exist yet (with no file in its way): runs are folders in it."""
    for parent in (root, *root.parents):
        if parent.exists():
            if not parent.is_dir():
                line, column = field_position(text, loc)
                raise ConfigError(f"{parent} is a file, not a directory: runs cannot be written in it",
                                  file=name, field=".".join(loc), line=line, column=column)
            return


def text_codec(value: str) -> str:
    """``auto`` or the name of a text encoding Python knows (``rot13`` is a codec, not an encoding)."""
    if value == "auto":
        return value
    try:
        info = codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r} (use auto, utf-8, cp1252, utf-16, ...)") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"{value!r} is not a text encoding (use auto, utf-8, cp1252, utf-16, ...)")
    return value
