"""What a pass is, and the driver that applies one until nothing matches."""
from __future__ import annotations

from typing import Any, Protocol

from ..ir import Graph, Node


class Pass(Protocol):
    """A local rewrite: `match` looks at one node (and its neighbours) and returns what `transform` needs,
    or None; `transform` rewrites the graph in place. Passes never reorder nodes (see ir.py)."""

    name: str

    def match(self, graph: Graph, node: Node) -> Any | None: ...

    def transform(self, graph: Graph, node: Node, found: Any) -> None: ...


def apply(graph: Graph, rewrite: Pass) -> bool:
    """Apply `rewrite` wherever it matches, first node to last, until it matches nowhere; then drop the nodes
    nothing reads any more. Returns whether the graph changed."""
    changed = False
    progress = True
    while progress:
        progress = False
        for node in list(graph.nodes):
            if any(node is n for n in graph.nodes):  # an earlier transform may have removed it
                found = rewrite.match(graph, node)
                if found is not None:
                    rewrite.transform(graph, node, found)
                    changed = progress = True
    graph.prune()
    return changed
