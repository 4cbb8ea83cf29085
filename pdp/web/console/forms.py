"""Form values to the service's request models, and refusals to French messages on fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# Refusal codes of the service that concern one field: the message is shown next to it too.
FIELD_OF_CODE = {
    "LOGIN_TAKEN": "login",
    "RETROACTIVE_DATE": "closes_on",
    "USER_STARTED": "opens_on",
    "MEMBERSHIP_STARTED": "opens_on",
    "INVALID_DATES": "closes_on",
}

_PROBLEMS = {
    "missing": "Ce champ est obligatoire.",
    "string_too_short": "Ce champ est obligatoire.",
    "string_too_long": "Valeur trop longue.",
    "string_pattern_mismatch": "Format invalide.",
    "value_error": "Date invalide : format attendu AAAA-MM-JJ.",
}


class Field(NamedTuple):
    """One field of a form: its name, French label, input type, whether required, a hint."""

    name: str
    label: str
    kind: str = "text"
    required: bool = False
    hint: str = ""


LOGIN_HINT = "Lettres sans accent et chiffres, puis . _ @ + - ; unique sur le portail."
USER_FIELDS = (
    Field(
        "login",
        "Identifiant",
        required=True,
        hint=LOGIN_HINT,
    ),
    Field("last_name", "Nom", required=True),
    Field("first_name", "Prénom", required=True),
    Field("email", "Adresse électronique", "email", required=True),
    Field("opens_on", "Date d'ouverture", "date", hint="Par défaut : aujourd'hui."),
    Field("closes_on", "Date de clôture", "date", hint="Facultative ; jamais dans le passé."),
)
EDIT_FIELDS = tuple(f for f in USER_FIELDS if f.name != "login")
DATE_FIELDS = (
    Field("opens_on", "Date de début", "date", hint="Seul un début à venir peut changer."),
    Field("closes_on", "Date de fin", "date", hint="Jamais dans le passé."),
)


def submitted(form: Mapping[str, str], fields: Iterable[Field]) -> dict[str, str]:
    """The non-empty values of ``fields`` in the form, stripped."""
    out = {}
    for f in fields:
        value = form.get(f.name, "").strip()
        if value:
            out[f.name] = value
    return out


def changes(
    form: Mapping[str, str], fields: Iterable[Field], current: Mapping[str, Any]
) -> dict[str, str | None]:
    """The fields whose submitted value differs from ``current`` (an emptied one is None)."""
    out: dict[str, str | None] = {}
    for f in fields:
        value = form.get(f.name, "").strip() or None
        if value != (current.get(f.name) or None):
            out[f.name] = value
    return out


def parse(model: type[M], values: Mapping[str, Any]) -> tuple[M | None, dict[str, str]]:
    """``values`` as ``model``, or None and a French message per field at fault."""
    try:
        return model.model_validate(dict(values)), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            errors.setdefault(name, _PROBLEMS.get(err["type"], "Valeur invalide."))
        return None, errors
