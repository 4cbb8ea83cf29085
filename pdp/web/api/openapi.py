"""The OpenAPI 3 document, generated from the routes' declared pydantic models.

Each JSON route is declared once, with :func:`route`: it serves the view on its blueprint and
registers the same path, method and models in :data:`registry`, the one list of the app's
operations (filled as the view modules are imported, hence once per process).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel, RootModel
from pydantic.json_schema import models_json_schema

from pdp.services.admin.preview import Preview
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
    other_responses: dict[int, type[BaseModel]] = field(default_factory=dict)
    status: int = 200
    auth: bool = False  # needs ``Authorization: Bearer <JWT>``
    api_key: bool = False  # needs ``X-Api-Key`` (a front-end's key, ``pdp clients add``)
    public: bool = False  # answers without credentials, and is not rate-limited
    endpoint: str = ""  # the Flask endpoint, ``<blueprint>.<view>`` (set when the view is)
    # The media types of the success answer, each described by ``response`` (a streamed
    # document: the model of one of its lines).
    content: tuple[str, ...] = ("application/json",)
    # Takes ``?dry_run=true`` (answers the write's preview, nothing written); None: every
    # authenticated write does (pdp.services.admin.preview).
    previewable: bool | None = None

    @property
    def dry_run(self) -> bool:
        """Whether the operation is a write that can be previewed."""
        if self.previewable is not None:
            return self.previewable
        return self.auth and self.method in ("post", "patch", "put", "delete")

    @property
    def path_params(self) -> tuple[str, ...]:
        """The names of the path's parameters, in the path's order."""
        return tuple(_OPENAPI_PARAM.findall(self.path))


# ``{name}`` in an OpenAPI path; ``<name>`` or ``<converter:name>`` (with the converter's
# arguments, if any) in a Flask rule.
_OPENAPI_PARAM = re.compile(r"\{([^{}]+)\}")
_FLASK_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def openapi_path(bp: Blueprint, rule: str) -> str:
    """The OpenAPI path Flask serves ``rule`` at under ``bp``: the blueprint's url_prefix
    joined as Flask joins it, each ``<converter:name>`` written ``{name}``."""
    # The app registers its blueprints without overriding their url_prefix.
    if bp.url_prefix is not None:
        rule = "/".join((bp.url_prefix.rstrip("/"), rule.lstrip("/"))) if rule else bp.url_prefix
    return _FLASK_PARAM.sub(r"{\1}", rule)


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

    def route(
        self,
        bp: Blueprint,
        method: str,
        rule: str,
        *,
        summary: str,
        response: type[BaseModel],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (400,),
        other_responses: dict[int, type[BaseModel]] | None = None,
        status: int = 200,
        auth: bool = False,
        api_key: bool = False,
        public: bool = False,
        content: tuple[str, ...] = ("application/json",),
        previewable: bool | None = None,
    ) -> Callable[[F], F]:
        """Decorator: serve the view at ``method rule`` on ``bp`` (endpoint
        ``<blueprint>.<view>``, as ``bp.get`` would) and register its operation, whose OpenAPI
        path and path parameters are derived from the same rule."""
        op = Operation(
            method.lower(),
            openapi_path(bp, rule),
            summary,
            response,
            body=body,
            query=query,
            errors=errors,
            other_responses=other_responses or {},
            status=status,
            auth=auth,
            api_key=api_key,
            public=public,
            content=content,
            previewable=previewable,
        )

        def wrap(view: F) -> F:
            op.endpoint = f"{bp.name}.{view.__name__}"
            self.add(op)
            return bp.route(rule, methods=[method.upper()])(view)

        return wrap

    def add(self, op: Operation) -> None:
        """Register ``op``; ValueError if its method and path are already registered."""
        if any(o.method == op.method and o.path == op.path for o in self.operations):
            raise ValueError(f"{op.method.upper()} {op.path} is declared twice")
        self.operations.append(op)

    def endpoints(
        self, *, public: bool = False, api_key: bool = False, auth: bool = False
    ) -> frozenset[str]:
        """The endpoints declared with exactly these credentials (the guard's tables)."""
        return frozenset(
            op.endpoint
            for op in self.operations
            if (op.public, op.api_key, op.auth) == (public, api_key, auth)
        )

    def document(self, title: str, version: str) -> dict[str, Any]:
        """Build the OpenAPI 3.1 document."""
        models: set[type[BaseModel]] = {ErrorResponse, PreviewAnswer}
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
                        "content": {
                            media: {"schema": {"$ref": ref_of[op.response]}} for media in op.content
                        },
                    }
                },
            }
            if op.dry_run:
                _previewed(entry, op, ref_of[PreviewAnswer])
            statuses = set(op.errors) | {405, 500}
            if op.auth or op.api_key:
                statuses |= {401, 403}
            if op.api_key:
                statuses.add(503)  # KEYS_UNAVAILABLE: the keys not read yet (pdp.services.api_keys)
            if op.auth:
                # IDENTITY_PROVIDER_UNAVAILABLE: a token's key unknown, the provider unreachable
                # (pdp.services.jwks).
                statuses.add(503)
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
            if op.dry_run:
                params.append(DRY_RUN)
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


class PreviewAnswer(RootModel[Preview]):
    """What a write would do, asked with ``?dry_run=true``: nothing is written."""


DRY_RUN: dict[str, Any] = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "description": (
        "true: answer what the write would do (its preview, computed by the write itself and "
        "rolled back), write nothing."
    ),
    "schema": {"type": "boolean", "default": False},
}


def _previewed(entry: dict[str, Any], op: Operation, preview: str) -> None:
    """A previewable write answers 200 with its preview when asked ``?dry_run=true``."""
    ok = entry["responses"].setdefault(
        "200", {"description": "OK (with dry_run=true: the preview)", "content": {}}
    )
    for media in ("application/json",):
        found = ok["content"].get(media, {}).get("schema")
        schema = {"$ref": preview} if found is None else {"anyOf": [found, {"$ref": preview}]}
        ok["content"][media] = {"schema": schema}


# The app's operations, in the order their view modules declare them.
registry = Registry()
route = registry.route
