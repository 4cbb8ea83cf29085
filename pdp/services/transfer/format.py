"""The transfer format, version 1 (docs/transfer-format.md): JSON Lines, one record a line,
natural keys only (Caf code, organisation code, convention reference, group code, login),
every date kept.

The first line is the header ``{"record": "header", "format": "pdp-transfer", "version": 1,
...}``; then the Cafs, the operators, and each organisation's records, together. Each record
is a JSON object whose ``record`` names its kind; its fields are those of the models below,
in that order (the export writes them so; the import accepts any order).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from pdp.core.fields import CafCode, Code, Day, NewLogin, text
from pdp.services.admin.requests import Email, Label, Text

FORMAT = "pdp-transfer"
VERSION = 1
# The order of the kinds within an organisation, as the export writes them.
ORG_KINDS = (
    "organisation",
    "convention",
    "subscription",
    "user",
    "partner_admin",
    "group",
    "group_role",
    "group_manager",
    "membership",
    "afas_profile",
)
NETWORK_KINDS = ("caf", "operator")
Service = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]
RoleName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]
Name = Annotated[str, text(200, 1)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Dated(_Record):
    opens_on: Day
    closes_on: Day | None


class Header(_Record):
    record: Literal["header"]
    format: str
    version: int
    organisation: Code | None = None
    at: Day | None = None


class CafRec(_Dated):
    record: Literal["caf"]
    code: CafCode
    name: Name


class OperatorRec(_Dated):
    record: Literal["operator"]
    login: NewLogin
    first_name: Text
    last_name: Text
    email: Email


class OrganisationRec(_Dated):
    record: Literal["organisation"]
    organisation: Code
    name: Name
    kind: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]


class ConventionRec(_Dated):
    record: Literal["convention"]
    organisation: Code
    reference: Code
    caf: CafCode


class SubscriptionRec(_Dated):
    record: Literal["subscription"]
    organisation: Code
    convention: Code
    service: Service


class UserRec(_Dated):
    record: Literal["user"]
    organisation: Code
    login: NewLogin
    first_name: Text
    last_name: Text
    email: Email


class PartnerAdminRec(_Dated):
    record: Literal["partner_admin"]
    organisation: Code
    login: NewLogin


class GroupRec(_Dated):
    record: Literal["group"]
    organisation: Code
    code: Code
    label: Label
    convention: Code
    parent: Code | None
    system: bool


class GroupRoleRec(_Dated):
    record: Literal["group_role"]
    organisation: Code
    group: Code
    service: Service
    role: RoleName


class GroupManagerRec(_Dated):
    record: Literal["group_manager"]
    organisation: Code
    group: Code
    login: NewLogin


class MembershipRec(_Dated):
    record: Literal["membership"]
    organisation: Code
    group: Code
    login: NewLogin


class AfasProfileRec(_Dated):
    record: Literal["afas_profile"]
    organisation: Code
    login: NewLogin
    profile: RoleName


NetworkRecord = CafRec | OperatorRec
OrgRecord = (
    OrganisationRec
    | ConventionRec
    | SubscriptionRec
    | UserRec
    | PartnerAdminRec
    | GroupRec
    | GroupRoleRec
    | GroupManagerRec
    | MembershipRec
    | AfasProfileRec
)
Record = NetworkRecord | OrgRecord
_ADAPTER: TypeAdapter[Record] = TypeAdapter(Annotated[Record, Field(discriminator="record")])
_HEADER: TypeAdapter[Header] = TypeAdapter(Header)


def header(organisation: str | None = None, at: dt.date | None = None) -> dict[str, Any]:
    """The first line's record."""
    return {
        "record": "header",
        "format": FORMAT,
        "version": VERSION,
        "organisation": organisation,
        "at": None if at is None else at.isoformat(),
    }


def dumps(record: dict[str, Any]) -> bytes:
    """One line: the record's fields in the order given, compact, ending with a newline."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def parse_header(line: bytes) -> Header:
    """The header; raise ValueError (in French) unless it names this format and version."""
    found = _HEADER.validate_json(line)
    if found.format != FORMAT or found.version != VERSION:
        raise ValueError(
            f"format {found.format!r} version {found.version} : seul {FORMAT!r} version "
            f"{VERSION} est lu"
        )
    return found


def parse(line: bytes) -> Record:
    """One record; raise pydantic's ValidationError for a line that is not one."""
    return _ADAPTER.validate_json(line)


def day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()
