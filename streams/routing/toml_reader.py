"""Reading a TOML document with problems that point at the line and key of the mistake.

tomllib gives the loaded tables but no positions; KeyLines finds the line each table and key is
written on, and TableReader checks values out of the tables, keeping every problem (with its line
and key path) so that a document is reported on completely rather than one mistake at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Where a value sits in the loaded document: table keys, and indexes into arrays.
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong in a policy file: the line (when known), the key path and what.

    Defined here because TableReader records them; policy_file re-exports it for its callers.
    """

    line: int | None
    path: str
    message: str


class PolicyError(ValueError):
    """A policy that cannot be loaded; ``problems`` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(_problem_text(source, p) for p in problems))


def _problem_text(source: str, problem: PolicyProblem) -> str:
    where = f"{source}:{problem.line}" if problem.line else source
    return (
        f"{where}: {problem.path}: {problem.message}"
        if problem.path
        else f"{where}: {problem.message}"
    )


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?")
_ASSIGNMENT = re.compile(
    r"""\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""([A-Za-z0-9_-]+)|"([^"]*)"|'([^']*)'""")
_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'[^']*')""")


def _open_brackets(text: str) -> int:
    """How many more arrays ``text`` opens than it closes (strings and comments aside)."""
    bare = _STRING.sub("", text).partition("#")[0]
    return bare.count("[") - bare.count("]")


def _key_parts(text: str) -> KeyPath:
    """The parts of a dotted key as written, quotes removed."""
    return tuple(next(g for g in m.groups() if g is not None) for m in _KEY_PART.finditer(text))


class KeyLines:
    """The line each table and key of a TOML text is written on; tomllib keeps no positions,
    so the headers and assignments at the start of lines are read once more here."""

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        tables: dict[KeyPath, int] = {}
        table: KeyPath = ()
        depth = 0  # inside an array written over several lines: its lines are values
        for number, raw in enumerate(text.split("\n"), start=1):
            header, assignment = _HEADER.fullmatch(raw), _ASSIGNMENT.match(raw)
            if depth > 0:
                depth += _open_brackets(raw)
            elif header is not None:
                table = _key_parts(header.group(2))
                if header.group(1) == "[[":
                    # Arrays of tables are numbered the way the loaded data indexes them.
                    tables[table] = tables.get(table, -1) + 1
                    table = (*table, tables[table])
                self.lines.setdefault(table, number)
            elif assignment is not None:
                self.lines.setdefault(table + _key_parts(assignment.group(1)), number)
                depth = _open_brackets(raw[assignment.end() :])

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor written on a line of its own."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def describe(value: Any) -> str:
    """A loaded value as a problem message names it: its TOML kind and the value itself."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number with a fraction"}
    kinds.update({str: "a string", list: "an array", dict: "a table"})
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _render(path: KeyPath) -> str:
    """``path`` the way a reader of the file writes it, like ``rules[0].channels``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# A check of one string: the problem with it, or None when it is fine.
Check = Callable[[str], str | None]


class TableReader:
    """Reads values out of the loaded tables and keeps every problem instead of stopping at the
    first; each reader returns a usable stand-in after a problem, so reading goes on."""

    def __init__(self, text: str) -> None:
        self.lines = KeyLines(text)
        self.problems: list[PolicyProblem] = []

    def fail(self, path: KeyPath, message: str) -> None:
        """Record a problem at ``path``."""
        self.problems.append(PolicyProblem(self.lines.line_of(path), _render(path), message))

    def table(self, value: Any, path: KeyPath, known: tuple[str, ...] | None) -> dict[str, Any]:
        """``value`` as a table whose keys are all in ``known`` (any keys when None)."""
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {describe(value)}")
            return {}
        for key in value:
            if known is not None and key not in known:
                self.fail((*path, key), f"unknown key {key!r}: expected {', '.join(known)}")
        return value

    def integer(
        self, table: dict[str, Any], path: KeyPath, key: str, low: int = 0, high: int | None = None
    ) -> int | None:
        """A whole number between ``low`` and ``high``; None when missing or wrong."""
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            unit = (
                " of basis points (500 is 5%)" if key.endswith("bps") or key.endswith("_bp") else ""
            )
            self.fail((*path, key), f"expected a whole number{unit}, got {describe(value)}")
        elif value < low or (high is not None and value > high):
            upper = f" and at most {high}" if high is not None else ""
            self.fail((*path, key), f"must be at least {low}{upper}, got {value}")
        else:
            return value
        return None

    def strings(
        self, table: dict[str, Any], path: KeyPath, key: str, check: Check
    ) -> tuple[str, ...] | None:
        """A non-empty array of distinct strings each passing ``check``; None when missing."""
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.fail((*path, key), f"expected a non-empty array, got {describe(value)}")
            return ()
        kept: list[str] = []
        for item in value:
            problem = (
                check(item) if isinstance(item, str) else f"expected a string, got {describe(item)}"
            )
            if problem is None and item in kept:
                problem = f"{item!r} is listed twice"
            if problem is not None:
                self.fail((*path, key), problem)
            else:
                kept.append(item)
        return tuple(kept)


def matching(pattern: re.Pattern[str], what: str) -> Check:
    """A Check that a string is all of ``pattern``, naming it ``what`` when it is not."""

    def check(text: str) -> str | None:
        return None if pattern.fullmatch(text) else f"{text!r} is not {what}"

    return check
