"""The OpenAPI 3 document, generated from the routes' declared pydantic models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pdp.web.api.schemas import ErrorResponse

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Operation:
    """What a route declares about itself."""

    method: str
    path: str
    summary: str
    response: type[BaseModel]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400,)
    path_params: tuple[str, ...] = ()
    other_responses: dict[int, type[BaseModel]] = field(default_factory=dict)
    status: int = 200
    auth: bool = False  # needs ``Authorization: Bearer <JWT>``
    api_key: bool = False  # needs ``X-Api-Key`` (a front-end's key, ``pdp clients add``)
    public: bool = False  # answers without credentials, and is not rate-limited


# An example of each path parameter, from the demo data (pdp.services.demo): the fuzzers start from
# these, so that calls reach the business logic and not only "unknown" answers.
PATH_EXAMPLES = {
    "login": "bruno.petit",
    "service": "cdap",
    "org": "mairie-montreuil",
    "code": "CCAS",
    "group": "CCAS-ACCUEIL",
    "profile": "declaration",
    "reference": "CONV-mairie-montreuil-931",
    "subscription_id": "1",
    "decision_id": "0" * 32,
}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never JSON null: ``anyOf [X, null]`` becomes X
    (keeping the title, default and description)."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(options):
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if schema.get("default") is not None:
        rest["default"] = schema["default"]
    return {**kept[0], **rest}


@dataclass
class Registry:
    """The operations of the API, in the order declared."""

    operations: list[Operation] = field(default_factory=list)

    def operation(self, op: Operation) -> Callable[[F], F]:
        """Decorator: register ``op`` for the view it wraps."""

        def wrap(view: F) -> F:
            self.operations.append(op)
            return view

        return wrap

    def document(self, title: str, version: str) -> dict[str, Any]:
        """Build the OpenAPI 3.1 document."""
        models: set[type[BaseModel]] = {ErrorResponse}
        for op in self.operations:
            models.add(op.response)
            models.update(op.other_responses.values())
            if op.body is not None:
                models.add(op.body)
        ordered = sorted(models, key=lambda m: m.__name__)
        refs, schema = models_json_schema(
            [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
        )
        ref_of = {m: refs[(m, "validation")]["$ref"] for m in ordered}
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            entry: dict[str, Any] = {
                "summary": op.summary,
                "operationId": f"{op.method}_{op.path}".replace("/", "_")
                .replace("{", "")
                .replace("}", ""),
                "responses": {
                    str(op.status): {
                        "description": "Created" if op.status == 201 else "OK",
                        "content": {"application/json": {"schema": {"$ref": ref_of[op.response]}}},
                    }
                },
            }
            statuses = set(op.errors) | {405, 500}
            if op.auth or op.api_key:
                statuses |= {401, 403}
            if op.api_key:
                statuses.add(503)  # KEYS_UNAVAILABLE: the keys not read yet (pdp.services.api_keys)
            if not op.public:
                statuses.add(429)
            for status in sorted(statuses):
                entry["responses"][str(status)] = {
                    "description": "Error",
                    "content": {"application/json": {"schema": {"$ref": ref_of[ErrorResponse]}}},
                }
            for status, model in op.other_responses.items():
                entry["responses"][str(status)] = {
                    "description": model.__doc__ or "",
                    "content": {"application/json": {"schema": {"$ref": ref_of[model]}}},
                }
            params: list[dict[str, Any]] = [
                {
                    "name": p,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    **({"example": PATH_EXAMPLES[p]} if p in PATH_EXAMPLES else {}),
                }
                for p in op.path_params
            ]
            if op.query is not None:
                qs = op.query.model_json_schema()
                required = set(qs.get("required", []))
                for name, prop in qs.get("properties", {}).items():
                    params.append(
                        {
                            "name": name,
                            "in": "query",
                            "required": name in required,
                            "schema": _not_null(prop),
                        }
                    )
            if params:
                entry["parameters"] = params
            if op.auth and op.api_key:
                entry["security"] = [{"apiKey": []}, {"bearerAuth": []}]
            elif op.auth:
                entry["security"] = [{"bearerAuth": []}]
            elif op.api_key:
                entry["security"] = [{"apiKey": []}]
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": ref_of[op.body]}}},
                }
            paths.setdefault(op.path, {})[op.method] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schema.get("$defs", {}),
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                },
            },
        }
