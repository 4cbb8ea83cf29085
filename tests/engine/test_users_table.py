"""The index's users table (``pdp.engine.users_table``) behaves as a dict of login → user.

A plain dict is the reference: random sequences of full builds, writes, removals and reads go
to both, and after every step the table must answer every read as the dict does. A user read
from the table is a copy that points to its organisation's partition of the index.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp.engine.decision import Grant
from pdp.engine.entries import OrgPartition, UserEntry
from pdp.engine.index import Index
from pdp.engine.users_table import UserTable

ORGS = {1: OrgPartition(1, "org-1", "Org 1"), 2: OrgPartition(2, "org-2", "Org 2")}
LOGINS = [f"user.{i}" for i in range(40)] + ["", "é.accentué", "x" * 200]


def _user(login: str, n: int) -> UserEntry:
    org = (None, 1, 2)[n % 3]
    user = UserEntry(n, login, org, 700_000 + n, 800_000 - n)
    user.memberships = [(n, 700_000, 800_000), (n + 1, 700_100, 700_200)][: n % 3]
    user.profiles = [("gestionnaire", 700_000, 900_000)] if n % 4 == 0 else []
    user.is_operator = n % 5 == 0
    user.managed = [(n, 700_000, 800_000)] if n % 2 else ()
    user.org = ORGS.get(org) if org is not None else None
    if n % 3:
        user.grants = {
            "cdap": [(700_000, 800_000, "T1", Grant("cdap", "T1", f"G{n}"))],
            "afas": [(700_000, 900_000, "gestionnaire", Grant("afas", "gestionnaire", None, "x"))],
        }
    return user


def _same(table: UserTable, reference: dict[str, UserEntry]) -> None:
    assert len(table) == len(reference)
    assert sorted(table) == sorted(reference)
    for login in LOGINS:
        found = table.get(login)
        assert (login in table) == (login in reference), login
        if login not in reference:
            assert found is None
            continue
        assert found == reference[login], login
        assert found is not None and found.org is reference[login].org


operation = st.one_of(
    st.tuples(st.just("build"), st.dictionaries(st.sampled_from(LOGINS), st.integers(0, 99))),
    st.tuples(st.just("set"), st.sampled_from(LOGINS), st.integers(0, 99)),
    st.tuples(st.just("del"), st.sampled_from(LOGINS)),
    st.tuples(st.just("edit"), st.sampled_from(LOGINS), st.integers(0, 99)),
)


# 0: every full build makes the flat records; a billion: the base stays the entries themselves.
LAYOUTS = pytest.mark.parametrize("compact_from", [0, 10**9], ids=["flat", "objects"])


@LAYOUTS
@settings(max_examples=300, deadline=None)
@given(operations=st.lists(operation, max_size=30))
def test_the_table_answers_as_a_dict(
    compact_from: int, operations: list[tuple[object, ...]]
) -> None:
    table, reference = UserTable(ORGS, compact_from), {}
    for op in operations:
        match op:
            case ("build", dict() as chosen):
                table, reference = UserTable(ORGS, compact_from), {}
                users = {login: _user(login, n) for login, n in chosen.items()}
                table.add_all(users)
                reference.update({login: _user(login, n) for login, n in chosen.items()})
                assert table.changed() == set()  # a full build: all in the shared base
            case ("set", str() as login, int() as n):
                table[login] = _user(login, n)
                reference[login] = _user(login, n)
            case ("del", str() as login):
                if login in reference:
                    del reference[login]
                    del table[login]
                else:
                    try:
                        del table[login]
                    except KeyError:
                        pass
                    else:
                        raise AssertionError(f"{login!r} removed though absent")
            case ("edit", str() as login, int() as n):
                # What the index's in-place changes do: read (a copy), change, write back.
                user = table.get(login)
                if user is not None:
                    user.managed = [(n, 1, 2)]
                    table[login] = user
                    assert login in table.changed()
                    reference[login].managed = [(n, 1, 2)]
        _same(table, reference)


def test_colliding_logins_are_told_apart() -> None:
    """Thousands of logins in a table at most half full: probes cross other users' slots."""
    users = {f"u{i}": _user(f"u{i}", i) for i in range(5000)}
    table = UserTable(ORGS, compact_from=0)
    table.add_all(users)
    assert table.size_bytes() > 0  # flat records
    assert all(table[login] == user for login, user in users.items())
    assert table.get("u5000") is None and "u-1" not in table
    del table["u17"]
    assert "u17" not in table and table.get("u18") == users["u18"] and len(table) == 4999


def test_a_full_build_is_flat_from_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """``COMPACT_FROM`` users and more: flat records; fewer: the entries themselves."""
    from pdp.engine import users_table

    for threshold, flat in ((3, True), (4, False)):
        monkeypatch.setattr(users_table, "COMPACT_FROM", threshold)
        index = Index()
        index.users.add_all({f"u{i}": _user(f"u{i}", i) for i in range(3)})
        assert (index.users.size_bytes() > 0) is flat
        assert sorted(index.users) == ["u0", "u1", "u2"]
