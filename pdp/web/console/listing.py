"""How the console lays out a long list: groups in tree order, and pages of it."""

from __future__ import annotations

from pdp.services.admin.responses import GroupItem

GROUPS_PAGE = 50  # tree rows a page of the list shows (each row asks the engine what it may do)


def page_number(text: str | None) -> int:
    """The page asked for (``?page=N``, from 1); anything else is the first page."""
    return int(text) if text is not None and text.isdigit() and 0 < int(text) < 100_000 else 1


def tree_order(listing: list[GroupItem]) -> list[tuple[GroupItem, int]]:
    """The groups in tree order (each parent followed by its sub-groups), with their depth."""
    codes = {g.code for g in listing}
    children: dict[str | None, list[GroupItem]] = {}
    for g in listing:
        parent = g.parent if g.parent in codes else None
        children.setdefault(parent, []).append(g)
    out: list[tuple[GroupItem, int]] = []
    seen: set[str] = set()

    def walk(parent: str | None, depth: int) -> None:
        for g in sorted(children.get(parent, []), key=lambda g: g.code):
            if g.code not in seen:
                seen.add(g.code)
                out.append((g, min(depth, 5)))
                walk(g.code, depth + 1)

    walk(None, 0)
    # A corrupt tree (a cycle) never hides a group: the rest at the top level.
    out.extend((g, 0) for g in listing if g.code not in seen)
    return out
