"""Where each key of a TOML text is: tomllib gives no line numbers, so errors about a sweep file find the
line of a key here (`key_lines`). Works on text that tomllib already accepted."""

from __future__ import annotations

import re
from typing import Any

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _skip_string(text: str, i: int) -> int:
    """Index just past the TOML string starting at text[i] (basic, literal, or multi-line)."""
    q = text[i]
    if text.startswith(q * 3, i):
        end = text.find(q * 3, i + 3)
        while q == '"' and end > 0 and _escaped(text, end):
            end = text.find(q * 3, end + 1)
        end = len(text) - 3 if end < 0 else end
        # A closing run may be 4 or 5 quotes long (quotes inside the string next to the delimiter).
        end += 3
        while end < len(text) and text[end] == q:
            end += 1
        return end
    j = i + 1
    while j < len(text) and text[j] != q and text[j] != "\n":
        j += 2 if (q == '"' and text[j] == "\\") else 1
    return j + 1


def _escaped(text: str, i: int) -> bool:
    n = 0
    while i - 1 - n >= 0 and text[i - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def _read_key(text: str, i: int) -> tuple[list[str], int]:
    """A (dotted) key at text[i]: its parts and the index after it."""
    parts: list[str] = []
    while i < len(text):
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] in "\"'":
            end = _skip_string(text, i)
            parts.append(text[i + 1 : end - 1])
            i = end
        else:
            m = _BARE.match(text, i)
            if not m:
                break
            parts.append(m.group())
            i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        break
    return parts, i


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Where each key and table is: path -> 1-based line. Paths: ("name",), ("defaults",),
    ("defaults", "iters"), ("grid", "target"), ("runs", 0), ("runs", 0, "target"), ... Array-of-tables
    entries and inline tables in arrays get their index. The text must already be valid TOML."""
    lines: dict[tuple[Any, ...], int] = {}
    table: tuple[Any, ...] = ()
    aot: dict[tuple[Any, ...], int] = {}
    stack: list[list[Any]] = []  # ["arr", path, index] or ["tbl", path]
    line, i, n = 1, 0, len(text)
    at_key, value_path = True, ()

    def note(path: tuple[Any, ...], at: int) -> None:
        lines.setdefault(path, at)

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            if not stack:
                at_key = True
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if not stack and at_key and c == "[":
            double = text.startswith("[[", i)
            parts, j = _read_key(text, i + (2 if double else 1))
            name = tuple(parts)
            if double:
                aot[name] = aot.get(name, -1) + 1
                table = (*name, aot[name])
            else:
                table = name
            note(table, line)
            i = text.find("\n", j)
            i = n if i < 0 else i
            at_key = False
            continue
        if at_key:
            parts, j = _read_key(text, i)
            if not parts:  # not a key after all; move on
                i += 1
                continue
            base = stack[-1][1] if stack and stack[-1][0] == "tbl" else table
            value_path = (*base, *parts)
            note(value_path, line)
            i = text.find("=", j) + 1 or n
            at_key = False
            continue
        if c in "\"'":
            end = _skip_string(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        if c == "[":
            if stack and stack[-1][0] == "arr":
                top = stack[-1]
                top[2] += 1
                path = (*top[1], top[2])
            else:
                path = value_path
            stack.append(["arr", path, -1])
        elif c == "{":
            if stack and stack[-1][0] == "arr":
                top = stack[-1]
                top[2] += 1
                path = (*top[1], top[2])
                note(path, line)
            else:
                path = value_path
            stack.append(["tbl", path])
            at_key = True
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack and stack[-1][0] == "tbl":
                at_key = True
        i += 1
    return lines

