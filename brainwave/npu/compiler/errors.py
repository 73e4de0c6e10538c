"""The error for a layer or node the NPU cannot run: it names the node, its op type and what to use instead."""
from __future__ import annotations

import difflib

from .builder import CompileError


class UnsupportedOpError(CompileError):
    def __init__(self, kind: str, name: str, op_type: str, why: str, alternative: str | None = None) -> None:
        self.node_name = name
        self.op_type = op_type
        self.alternative = alternative
        hint = f"; nearest supported: {alternative}" if alternative else ""
        super().__init__(f"{kind} {name!r} ({op_type}) cannot run on the NPU: {why}{hint}")


def nearest(op_type: str, supported: list[str], known: dict[str, str]) -> str | None:
    """What to use instead of `op_type`: a known substitute, else the supported op type spelled most alike."""
    if op_type in known:
        return known[op_type]
    close = difflib.get_close_matches(op_type, supported, n=1, cutoff=0.5)
    return close[0] if close else None
