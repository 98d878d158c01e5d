"""Tiny JSON paths for response mapping: `results[0].id`, `data.items[*].item`,
`["@odata.count"]`. Enough to point at a field; not a query language."""

from __future__ import annotations

import re
from typing import Any

from ..config import ConfigError

_SEG = re.compile(r"""\.?([^.\[\]]+)|\[(\d+|\*)\]|\[(?:"([^"]*)"|'([^']*)')\]""")
_MISSING = object()


class Path:
    def __init__(self, text: str, key: str) -> None:
        self.text = text
        self.steps: list[str | int | None] = []      # key, index, None = every element
        pos = 0
        if not text:
            raise ConfigError(f"{key}: empty JSON path")
        while pos < len(text):
            m = _SEG.match(text, pos)
            if not m or m.end() == pos or (pos == 0 and text.startswith(".")):
                raise ConfigError(f"{key}: bad JSON path {text!r} at {text[pos:]!r}")
            if m.group(1) is not None:
                self.steps.append(m.group(1))
            elif m.group(2) is not None:
                self.steps.append(None if m.group(2) == "*" else int(m.group(2)))
            else:
                self.steps.append(m.group(3) if m.group(3) is not None else m.group(4))
            pos = m.end()

    @property
    def fans_out(self) -> bool:
        return None in self.steps

    def before_fan_out(self) -> "Path":
        """The steps before the first [*] (all of them when there is none): where a
        fan-out path finds an empty list is an empty result, not a missing field."""
        cut = self.steps.index(None) if self.fans_out else len(self.steps)
        pos = 0
        for _ in range(cut):                # the text of those steps, for repr
            pos = _SEG.match(self.text, pos).end()
        part = object.__new__(Path)
        part.text, part.steps = self.text[:pos], self.steps[:cut]
        return part

    def find(self, doc: Any) -> list[Any]:
        """Every value the path reaches (none when a step is missing)."""
        current = [doc]
        for step in self.steps:
            nxt = []
            for node in current:
                if step is None:
                    if isinstance(node, list):
                        nxt.extend(node)
                elif isinstance(step, int):
                    if isinstance(node, list) and step < len(node):
                        nxt.append(node[step])
                elif isinstance(node, dict) and step in node:
                    nxt.append(node[step])
            current = nxt
        return current

    def first(self, doc: Any, default: Any = None) -> Any:
        found = self.find(doc)
        return found[0] if found else default

    def __repr__(self) -> str:
        return f"Path({self.text!r})"
