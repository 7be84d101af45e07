"""Lineage: a glint's ancestors up to the root and the tree of its descendants, both bounded.

Anyone who can publish can build a chain as long as they like, so every part of the answer has a
bound: at most LIMIT ancestors, at most LIMIT descendants, and a tree at most MAX_DEPTH levels deep
(a JSON encoder, like a reader, has a nesting limit). `truncated` says when a bound cut it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .glints import Glint

LIMIT = 200  # glints on either side
MAX_DEPTH = 50  # levels of the descendant tree


class LineageRecord(Protocol):
    def get(self, gid: str) -> Glint | None: ...

    def ancestors(self, gid: str, limit: int) -> list[Glint]: ...

    def descendants(self, gid: str, limit: int) -> list[Glint]: ...


def lineage(record: LineageRecord, gid: str, limit: int = LIMIT) -> dict[str, Any] | None:
    """The glint, its ancestors (nearest first) and its descendant tree; None when unknown."""
    me = record.get(gid)
    if me is None:
        return None
    ancestors = record.ancestors(gid, limit)
    below = record.descendants(gid, limit)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for glint in below:  # parents come before their children
        children.setdefault(glint.parent_id, []).append(glint.to_dict())
    cut = False

    def attach(node: dict[str, Any], depth: int) -> dict[str, Any]:
        nonlocal cut
        kids = children.get(node["id"], [])
        if depth >= MAX_DEPTH and kids:
            cut = True
            kids = []
        node["children"] = [attach(kid, depth + 1) for kid in kids]
        return node

    tree = attach(me.to_dict(), 0)["children"]
    return {
        "glint": me.to_dict(),
        "ancestors": [g.to_dict() for g in ancestors],
        "descendants": tree,
        "truncated": cut or len(ancestors) >= limit or len(below) >= limit,
    }
