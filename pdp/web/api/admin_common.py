"""What every administration view needs: the service, the acting user, the parsed body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel

from pdp.web.api.decisions import read_body
from pdp.web.container import services

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

M = TypeVar("M", bound=BaseModel)

AUTH_ERRORS = (400, 401, 403, 404, 409, 413, 503)


def actor() -> str:
    """The acting user's login (401 unless the bearer token is valid and the user open)."""
    return services().admin.actor(request.headers.get("Authorization"))


def body(model: type[M]) -> M:
    """The JSON body parsed as ``model`` (400 / 413 otherwise); an empty body is ``{}``."""
    raw = read_body()
    return model.model_validate_json(raw or b"{}")


def answer(
    payload: BaseModel | Mapping[str, Any] | DataclassInstance, status: int = 200
) -> Response:
    """A JSON answer with ``status``; a model is answered as its JSON form, a dataclass as an
    object of its fields (both in their declared order)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    response = jsonify(payload)
    response.status_code = status
    return response
