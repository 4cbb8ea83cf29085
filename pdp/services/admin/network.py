"""The Caf network: its Cafs and its operators (R-CON-4), registered without SQL.

The first operator is registered from the command line (``pdp operators add``): whoever can run
it holds the database's credentials, so it writes as ``cli:<unix user>`` without asking the
engine (``command_line_write``). Operators then register the Cafs, the organisations and the
other operators through the API (``caf.manage``, ``operator.manage``). Every change is a policy
write like any other: a new revision and its audit records in one transaction.

A Caf is never deleted: it closes. It cannot close while a convention signed with it stays open
after that day (the convention would then name a Caf that no longer exists); an operator cannot
close the last operator who stays open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import Caf, Convention, Organisation, User
from pdp.core.errors import BadRequest, Conflict, NotFound, Unavailable
from pdp.engine.actions import Action
from pdp.engine.decision import Decision, Query
from pdp.engine.rules import Target
from pdp.records.policy_write import PolicyWriter
from pdp.services.admin import store
from pdp.services.admin.requests import CafEdit, CafNew, OperatorEdit, OperatorNew
from pdp.services.admin.service import AdminService, Tx

PLATFORM = Target("platform")


class CafOut(BaseModel):
    """A Caf of the network, and whether it is ``open`` today."""

    code: str
    name: str
    opens_on: str
    closes_on: str | None
    open: bool


class CafWritten(BaseModel):
    """A Caf as written."""

    caf: CafOut
    revision: int


class CafList(BaseModel):
    """Every Caf of the network, by code."""

    cafs: list[CafOut]


class OperatorOut(BaseModel):
    """An operator, and whether they are ``open`` today."""

    login: str
    first_name: str
    last_name: str
    email: str
    opens_on: str
    closes_on: str | None
    open: bool


class OperatorWritten(BaseModel):
    """An operator as written."""

    operator: OperatorOut
    revision: int


class OperatorList(BaseModel):
    """Every operator, by login."""

    operators: list[OperatorOut]


def caf_out(caf: Caf, today: dt.date) -> CafOut:
    """The public form of a Caf on ``today``."""
    return CafOut(
        code=caf.code,
        name=caf.name,
        opens_on=caf.opens_on.isoformat(),
        closes_on=store.day(caf.closes_on),
        open=store.is_open(caf, today),
    )


def operator_out(user: User, today: dt.date) -> OperatorOut:
    """The public form of an operator on ``today``."""
    return OperatorOut(
        login=user.login,
        first_name=user.first_name,
        last_name=user.last_name,
        email=user.email,
        opens_on=user.opens_on.isoformat(),
        closes_on=store.day(user.closes_on),
        open=store.is_open(user, today),
    )


def _state(out: CafOut | OperatorOut) -> dict[str, object]:
    """What the audit trail keeps of a record: its fields, without today's ``open`` flag."""
    return out.model_dump(exclude={"open"})


def _caf(session: Session, code: str) -> Caf:
    found = session.execute(select(Caf).where(Caf.code == code)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"Caf inconnue : {code!r}.", code="UNKNOWN_CAF")
    return found


def _operator(session: Session, login: str) -> User:
    found = session.execute(select(User).where(User.login == login)).scalar_one_or_none()
    if found is None or not found.is_operator:
        raise NotFound(f"Opérateur inconnu : {login!r}.", code="UNKNOWN_OPERATOR")
    return found


def _opening(day: dt.date | None, today: dt.date, what: str) -> dt.date:
    """The opening day asked for, today by default; never in the past (R-TIME-2)."""
    opens_on = day or today
    if opens_on < today:
        raise BadRequest(f"{what} ne peut pas ouvrir dans le passé (R-TIME-2).", "RETROACTIVE_DATE")
    return opens_on


def _closing(row: Caf | User, day: dt.date, today: dt.date, what: str) -> None:
    """A closing day: not before today, not before the opening; a closed record stays closed."""
    if row.closes_on is not None and row.closes_on <= today:
        raise Conflict(f"{what} est déjà clôturé(e) depuis le {row.closes_on}.", "ALREADY_CLOSED")
    store.not_in_past(day, today, "La date de clôture")
    store.check_closing(row.opens_on, day)


# -- Verbs on a write (the API's and the command line's) -------------------------------------


def add_caf(tx: Tx, data: CafNew) -> CafOut:
    """Register a Caf; 409 CAF_EXISTS if the code is taken."""
    if tx.session.execute(select(Caf.id).where(Caf.code == data.code)).first() is not None:
        raise Conflict(f"La Caf {data.code!r} existe déjà.", "CAF_EXISTS")
    # A Caf's days decide nothing by themselves (conventions do): a Caf that has long existed
    # may be registered with its real opening day.
    caf = Caf(code=data.code, name=data.name, opens_on=data.opens_on or tx.today)
    tx.session.add(caf)
    tx.session.flush()
    out = caf_out(caf, tx.today)
    tx.record(f"caf:{caf.code}", None, None, _state(out), None)
    return out


def edit_caf(tx: Tx, code: str, data: CafEdit) -> CafOut:
    """Rename or close a Caf. Closing: 409 CAF_IN_USE while a convention with it stays open
    after the closing day (close or end those conventions first)."""
    fields = data.model_fields_set
    if not fields:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    caf = _caf(tx.session, code)
    before = _state(caf_out(caf, tx.today))
    if "name" in fields:
        if data.name is None:
            raise BadRequest("« name » ne peut pas être vide.", code="VALIDATION_ERROR")
        caf.name = data.name
    if "closes_on" in fields:
        if data.closes_on is None:
            raise BadRequest("Une Caf clôturée ne rouvre pas.", code="VALIDATION_ERROR")
        _closing(caf, data.closes_on, tx.today, f"La Caf {code}")
        _no_convention_after(tx.session, caf, data.closes_on)
        caf.closes_on = data.closes_on
    out = caf_out(caf, tx.today)
    tx.record(f"caf:{caf.code}", None, before, _state(out), None)
    return out


def _no_convention_after(session: Session, caf: Caf, day: dt.date) -> None:
    """Raise Conflict(CAF_IN_USE) if a convention with ``caf`` is open on or after ``day``."""
    rows = session.execute(
        select(Organisation.code, Convention.reference)
        .join(Organisation, Organisation.id == Convention.organisation_id)
        .where(
            Convention.caf_id == caf.id,
            or_(Convention.closes_on.is_(None), Convention.closes_on > day),
        )
        .order_by(Organisation.code, Convention.reference)
    ).all()
    if rows:
        names = [f"{org}/{reference}" for org, reference in rows]
        raise Conflict(
            f"La Caf {caf.code} a encore des conventions ouvertes après le {day}: "
            f"{', '.join(names[:5])}{' …' if len(names) > 5 else ''}.",
            code="CAF_IN_USE",
            details={"conventions": names},
        )


def within_caf(
    caf: Caf, opens_on: dt.date, closes_on: dt.date | None, *, opening: bool = True
) -> None:
    """Raise Conflict(CAF_CLOSED) unless a convention open from ``opens_on`` to ``closes_on``
    lies within the Caf's own days (R-CON-1: a convention is with a Caf that exists).
    ``opening`` False: only its end is checked (an edit that keeps the opening day)."""
    outlives = caf.closes_on is not None and (closes_on is None or closes_on > caf.closes_on)
    if (opening and opens_on < caf.opens_on) or outlives:
        raise Conflict(
            f"La Caf {caf.code} est ouverte du {caf.opens_on}"
            f"{f' au {caf.closes_on}' if caf.closes_on else ''} : une convention avec elle "
            "doit tenir dans ces dates.",
            code="CAF_CLOSED",
        )


def add_operator(tx: Tx, data: OperatorNew) -> OperatorOut:
    """Register an operator; 409 LOGIN_TAKEN if the login is used anywhere on the portal."""
    if tx.session.execute(select(User.id).where(User.login == data.login)).first() is not None:
        raise Conflict(
            f"L'identifiant {data.login!r} est déjà utilisé sur le portail (R-USR-1).",
            code="LOGIN_TAKEN",
        )
    user = User(
        login=data.login,
        organisation_id=None,
        first_name=data.first_name,
        last_name=data.last_name,
        email=data.email,
        opens_on=_opening(data.opens_on, tx.today, "Un opérateur"),
        is_operator=True,
    )
    tx.session.add(user)
    tx.session.flush()
    out = operator_out(user, tx.today)
    tx.record(f"user:{user.login}", None, None, _state(out), None)
    return out


def edit_operator(tx: Tx, login: str, data: OperatorEdit) -> OperatorOut:
    """Change an operator's details or close them (R-USR-4); 409 LAST_OPERATOR rather than
    leave the network without an open operator."""
    fields = data.model_fields_set
    if not fields:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    user = _operator(tx.session, login)
    before = _state(operator_out(user, tx.today))
    store.set_details(user, data, fields)
    if "closes_on" in fields:
        if data.closes_on is None:
            raise BadRequest("Un opérateur clôturé ne rouvre pas.", code="VALIDATION_ERROR")
        _closing(user, data.closes_on, tx.today, f"L'opérateur {login}")
        _not_last(tx.session, user, tx.today)
        user.closes_on = data.closes_on
    out = operator_out(user, tx.today)
    tx.record(f"user:{user.login}", None, before, _state(out), None)
    return out


def _not_last(session: Session, leaving: User, today: dt.date) -> None:
    """Raise Conflict(LAST_OPERATOR) unless another operator is open today with no end."""
    others = session.execute(
        select(User.id).where(
            User.is_operator.is_(True),
            User.id != leaving.id,
            User.opens_on <= today,
            User.closes_on.is_(None),
        )
    ).first()
    if others is None:
        raise Conflict(
            "Au moins un opérateur doit rester ouvert : en enregistrer un autre d'abord.",
            code="LAST_OPERATOR",
        )


def cafs(session: Session, today: dt.date) -> CafList:
    """Every Caf, by code."""
    rows = session.execute(select(Caf).order_by(Caf.code)).scalars()
    return CafList(cafs=[caf_out(caf, today) for caf in rows])


def operators(session: Session, today: dt.date) -> OperatorList:
    """Every operator, by login."""
    rows = session.execute(
        select(User).where(User.is_operator.is_(True)).order_by(User.login)
    ).scalars()
    return OperatorList(operators=[operator_out(user, today) for user in rows])


# -- The command line's writes ----------------------------------------------------------------


def _held(actor: str, action: Action, target: Target) -> None:
    """The command line's authority: it holds the database's credentials."""


def _no_engine(query: Query) -> Decision:
    raise Unavailable("La ligne de commande n'interroge pas le moteur de décision.")


@contextmanager
def command_line_write(
    writer: PolicyWriter, actor: str, action: Action, today: dt.date
) -> Iterator[Tx]:
    """A write from the command line (``pdp cafs``, ``pdp operators``): the same policy write
    as the API's (a new revision, audit records naming ``actor``, all or nothing), without
    asking the engine, since whoever runs the command can write the tables anyway. This is how
    the first operator is registered."""
    with writer.write(action) as write:
        yield Tx(write, actor, action, PLATFORM, today, _held, _no_engine)


# -- The API's verbs: an operator acting (caf.manage, operator.manage) ------------------------


def create_caf(svc: AdminService, actor: str, data: CafNew) -> CafWritten:
    """Register a Caf (operators)."""
    with svc.write(actor, Action.CAF_MANAGE, PLATFORM) as tx:
        out = add_caf(tx, data)
    return CafWritten(caf=out, revision=tx.revision)


def change_caf(svc: AdminService, actor: str, code: str, data: CafEdit) -> CafWritten:
    """Rename or close a Caf (operators)."""
    with svc.write(actor, Action.CAF_MANAGE, PLATFORM) as tx:
        out = edit_caf(tx, code, data)
    return CafWritten(caf=out, revision=tx.revision)


def list_cafs(svc: AdminService, actor: str) -> CafList:
    """Every Caf (operators)."""
    with svc.read(actor, Action.CAF_MANAGE, PLATFORM) as session:
        return cafs(session, svc.today())


def create_operator(svc: AdminService, actor: str, data: OperatorNew) -> OperatorWritten:
    """Register an operator (operators)."""
    with svc.write(actor, Action.OPERATOR_MANAGE, PLATFORM) as tx:
        out = add_operator(tx, data)
    return OperatorWritten(operator=out, revision=tx.revision)


def change_operator(
    svc: AdminService, actor: str, login: str, data: OperatorEdit
) -> OperatorWritten:
    """Change or close an operator (operators)."""
    with svc.write(actor, Action.OPERATOR_MANAGE, PLATFORM) as tx:
        out = edit_operator(tx, login, data)
    return OperatorWritten(operator=out, revision=tx.revision)


def list_operators(svc: AdminService, actor: str) -> OperatorList:
    """Every operator (operators)."""
    with svc.read(actor, Action.OPERATOR_MANAGE, PLATFORM) as session:
        return operators(session, svc.today())
