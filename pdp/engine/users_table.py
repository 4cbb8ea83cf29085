"""The index's users, held as flat bytes that forked workers share without copying them.

A server builds its index once, before gunicorn forks the workers, so the workers share its
memory pages. Python objects do not stay shared: reading one writes its reference count, and
the page it sits on is then copied into the reader (copy-on-write). With 400,000 users held as
objects, every worker ended up with a private copy of most of them (+1.3 GiB over 4 workers
at national scale, ``bench/compact.py``).

From ``COMPACT_FROM`` users, every user is one ``marshal`` record inside a single ``bytes``
object, found through an open-addressing table of positions kept in an ``array``: reading a
slice of a ``bytes`` or an element of an ``array`` writes nothing into them, so their pages stay
shared however many checks read them. A lookup decodes the user's record into a fresh
``UserEntry`` (about 3 µs); its organisation is the partition object of the index. Below that
size the base is a dict of the entries themselves.

The base is never written. A change (``pdp.engine.index_delta``) writes the new entry, or the
removal, into a small per-process overlay that lookups consult first; a full build
(``Index.build``) makes a new base (``add_all`` on an empty table). Code that changes a user it
read writes it back at once (``table[login] = user``), as ``pdp.engine.index_delta`` does: the
entry read may be the base's own (objects) or one the next read returns again (flat records).
"""

from __future__ import annotations

import marshal
from array import array
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from pdp.engine.entries import UserEntry

if TYPE_CHECKING:
    from pdp.engine.entries import OrgPartition

_ABSENT: Any = object()  # not in the overlay (None there: removed)

# From how many users a full build makes the flat base. Below, the base is a dict of the
# entries themselves: a small index costs little memory even copied into every worker, and a
# lookup then decodes nothing (about 3 µs less a check). National scale is 400,000 users.
COMPACT_FROM = 50_000


def _encode(user: UserEntry) -> bytes:
    """One user's record, as plain values (grant paths as plain tuples: marshal wants them so,
    and a check makes ``Grant``s only of those it answers with)."""
    grants = {
        service: [(s, e, r, tuple(g)) for s, e, r, g in found]
        for service, found in user.grants.items()
    }
    return marshal.dumps(
        (
            user.id,
            user.organisation_id,
            user.start,
            user.end,
            user.memberships,
            user.profiles,
            user.is_operator,
            user.managed,
            grants,
        )
    )


class UserTable(MutableMapping[str, "UserEntry"]):
    """Login → ``UserEntry``: a shared, immutable base of records and an overlay of changes."""

    __slots__ = (
        "_blob",
        "_compact_from",
        "_count",
        "_ends",
        "_mask",
        "_name_ends",
        "_names",
        "_objects",
        "_orgs",
        "_overlay",
        "_recent",
        "_slots",
        "_view",
    )

    def __init__(self, orgs: Mapping[int, OrgPartition], compact_from: int | None = None) -> None:
        self._orgs = orgs  # the index's partitions: a decoded user points to theirs
        self._compact_from = COMPACT_FROM if compact_from is None else compact_from
        self._objects: dict[str, UserEntry] | None = None  # the base, when it is objects
        self._overlay: dict[str, UserEntry | None] = {}
        # The last user decoded: a check reads its user twice (the decision, then the log
        # entry's organisation). Forgotten at every write.
        self._recent: tuple[str, UserEntry] | None = None
        self._count = 0
        self._fold([])

    # -- the base ----------------------------------------------------------------------------

    def add_all(self, users: dict[str, UserEntry]) -> None:
        """Add or replace these users: into the base if the table is empty (a full build:
        flat records from ``COMPACT_FROM`` users, else the entries themselves), else into the
        overlay."""
        if self._count or self._overlay:
            for login, user in users.items():
                self[login] = user
        elif len(users) >= self._compact_from:
            self._fold([(login, _encode(user)) for login, user in users.items()])
        else:
            self._objects = dict(users)
            self._count = len(users)

    def _fold(self, records: list[tuple[str, bytes]]) -> None:
        self._recent = self._objects = None
        count = len(records)
        size = 1 << max(3, (count * 2).bit_length())  # at most half full: short probes
        mask = size - 1
        slots = array("q", bytes(8 * size))  # user position + 1; 0 is an empty slot
        ends, name_ends = array("q"), array("q")
        blob, names = bytearray(), bytearray()
        for position, (login, data) in enumerate(records):
            blob += data
            ends.append(len(blob))
            names += login.encode()
            name_ends.append(len(names))
            slot = hash(login) & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = position + 1
        self._blob, self._ends = bytes(blob), ends
        self._view = memoryview(self._blob)
        self._names, self._name_ends = bytes(names), name_ends
        self._slots, self._mask = slots, mask
        self._count = count

    def _position(self, login: str) -> int:
        """The base position of ``login``, or -1."""
        mask, slots, name_ends, names = self._mask, self._slots, self._name_ends, self._names
        raw = login.encode()
        slot = hash(login) & mask
        while True:
            i = slots[slot] - 1
            if i < 0:
                return -1
            if names[name_ends[i - 1] if i else 0 : name_ends[i]] == raw:
                return i
            slot = (slot + 1) & mask

    def _decode(self, login: str, i: int) -> UserEntry:
        ends = self._ends
        uid, org_id, start, end, memberships, profiles, operator, managed, grants = marshal.loads(
            self._view[ends[i - 1] if i else 0 : ends[i]]
        )
        org = self._orgs.get(org_id) if org_id is not None else None
        return UserEntry(
            uid, login, org_id, start, end, memberships, profiles, org, operator, managed, grants
        )

    def links(self, login: str) -> tuple[int, list[tuple[int, int, int]], Any]:
        """A user's id, memberships and managed groups, without the rest of their entry (what
        a change to an organisation's groups reads of each of its users to find those it
        concerns); KeyError if there is no such user."""
        found = self._overlay.get(login, _ABSENT)
        if found is _ABSENT and self._objects is not None:
            found = self._objects[login]
        if found is _ABSENT:
            i = self._position(login)
            if i < 0:
                raise KeyError(login)
            ends = self._ends
            record = marshal.loads(self._view[ends[i - 1] if i else 0 : ends[i]])
            return record[0], record[4], record[7]
        if found is None:
            raise KeyError(login)
        return found.id, found.memberships, found.managed

    # -- the mapping -------------------------------------------------------------------------

    def get(  # type: ignore[override]  # the hot path: no exceptions, no default
        self, login: str
    ) -> UserEntry | None:
        found = self._overlay.get(login, _ABSENT)
        if found is _ABSENT:
            objects = self._objects
            if objects is not None:
                return objects.get(login)
            recent = self._recent
            if recent is not None and recent[0] == login:
                return recent[1]
            i = self._position(login)
            if i < 0:
                return None
            user = self._decode(login, i)
            self._recent = (login, user)
            return user
        return found  # type: ignore[no-any-return]

    def __getitem__(self, login: str) -> UserEntry:
        found: UserEntry | None = self.get(login)
        if found is None:
            raise KeyError(login)
        return found

    def __contains__(self, login: object) -> bool:
        if not isinstance(login, str):
            return False
        found = self._overlay.get(login, _ABSENT)
        if found is _ABSENT:
            return self._in_base(login)
        return found is not None

    def _in_base(self, login: str) -> bool:
        if self._objects is not None:
            return login in self._objects
        return self._position(login) >= 0

    def __setitem__(self, login: str, user: UserEntry) -> None:
        self._recent = None
        if login not in self:
            self._count += 1
        self._overlay[login] = user

    def __delitem__(self, login: str) -> None:
        self._recent = None
        if login not in self:
            raise KeyError(login)
        self._count -= 1
        if self._in_base(login):
            self._overlay[login] = None
        else:
            del self._overlay[login]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        """The base's logins in build order, then those added since."""
        overlay, names, name_ends = self._overlay, self._names, self._name_ends
        for login in list(self._objects or ()):
            if login not in overlay:
                yield login
        start = 0
        for end in name_ends:
            login = names[start:end].decode()
            start = end
            if login not in overlay:
                yield login
        for login, user in list(overlay.items()):
            if user is not None:
                yield login

    def size_bytes(self) -> int:
        """The flat base's size: records, logins, positions and slots (0: the base is objects)."""
        if self._objects is not None:
            return 0
        arrays = (self._ends, self._name_ends, self._slots)
        return len(self._blob) + len(self._names) + sum(a.itemsize * len(a) for a in arrays)

    def changed(self) -> set[str]:
        """The logins written or removed since the last full build (the overlay's)."""
        return set(self._overlay)
