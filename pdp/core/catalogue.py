"""The service catalogue (R-CAT): loaded from ``policies/catalogue.yaml`` and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from pdp.core.errors import BadRequest, ConfigurationError
from pdp.core.text import CODE_PATTERN
from pdp.policies import CATALOGUE_PATH

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ROLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CODE = re.compile(CODE_PATTERN)


@dataclass(frozen=True)
class SystemGroup:
    """A group the system makes for each open subscription to its service (R-GRP-3)."""

    code: str
    label: str
    role: str


@dataclass(frozen=True)
class Service:
    """One online service and the roles groups may carry for it."""

    name: str
    label: str
    roles: tuple[str, ...]
    per_caf: bool = False
    user_profiles: tuple[str, ...] = ()
    system_groups: tuple[SystemGroup, ...] = ()
    former_names: tuple[str, ...] = ()
    # The parts of the service a role may open (tabs, actions), and which each role opens;
    # none declared: a role opens the whole service.
    features: tuple[str, ...] = ()
    opens: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def accepts(self, role: str) -> bool:
        """Return whether ``role`` may be asked for in a check (a group role or a user profile)."""
        return role in self.roles or role in self.user_profiles

    def opened_by(self, feature: str) -> frozenset[str]:
        """The roles (and profiles) that open ``feature`` (none for an unknown feature)."""
        return self._opened.get(feature, frozenset())

    @cached_property
    def _opened(self) -> dict[str, frozenset[str]]:
        return {
            f: frozenset(role for role, opened in self.opens.items() if f in opened)
            for f in self.features
        }


@dataclass(frozen=True)
class Catalogue:
    """Every service of the portal, by name."""

    services: dict[str, Service] = field(default_factory=dict)

    def service(self, name: str) -> Service:
        """Return the service, or raise BadRequest(UNKNOWN_SERVICE)."""
        try:
            return self.services[name]
        except KeyError:
            raise BadRequest(f"Service inconnu : {name!r}.", code="UNKNOWN_SERVICE") from None

    def check_role(self, service: str, role: str | None) -> None:
        """Raise BadRequest (UNKNOWN_SERVICE / UNKNOWN_ROLE) unless the pair exists."""
        svc = self.service(service)
        if role is not None and not svc.accepts(role):
            raise BadRequest(
                f"Rôle inconnu pour le service {service} : {role!r}.", code="UNKNOWN_ROLE"
            )

    def check_feature(self, service: str, role: str | None, feature: str | None) -> None:
        """Raise BadRequest unless the question names a feature of the service
        (UNKNOWN_FEATURE), and not together with a role (ROLE_AND_FEATURE: "with role R" and
        "opening feature F" are two questions, asked one at a time)."""
        if feature is None:
            return
        if role is not None:
            raise BadRequest(
                "Demandez un rôle ou une fonctionnalité, pas les deux.", code="ROLE_AND_FEATURE"
            )
        if feature not in self.service(service).features:
            raise BadRequest(
                f"Fonctionnalité inconnue pour le service {service} : {feature!r}.",
                code="UNKNOWN_FEATURE",
            )


def _strings(value: Any, where: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"catalogue: {where} must be a list of strings")
    bad = [v for v in value if not pattern.match(v) or v == "*"]
    if bad:
        raise ConfigurationError(f"catalogue: {where} has invalid names {bad}")
    if len(set(value)) != len(value):
        raise ConfigurationError(f"catalogue: {where} has duplicates")
    return tuple(value)


def _system_groups(value: Any, service: str, roles: tuple[str, ...]) -> tuple[SystemGroup, ...]:
    """The ``system_groups`` of ``service``: a list of {code, label, role}, codes unique, each
    role one of the service's."""
    where = f"catalogue: {service}.system_groups"
    if not isinstance(value, list):
        raise ConfigurationError(f"{where} must be a list of {{code, label, role}}")
    out: list[SystemGroup] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"code", "label", "role"}:
            raise ConfigurationError(f"{where}: each item has exactly code, label and role")
        code, label, role = item["code"], item["label"], item["role"]
        if not isinstance(code, str) or not _CODE.match(code) or len(code) > 64:
            raise ConfigurationError(f"{where}: invalid group code {code!r}")
        if not isinstance(label, str) or not label.strip():
            raise ConfigurationError(f"{where}: {code} needs a label")
        if role not in roles:
            raise ConfigurationError(f"{where}: {code}'s role {role!r} is not a role of {service}")
        out.append(SystemGroup(code, label, role))
    if len({g.code for g in out}) != len(out):
        raise ConfigurationError(f"{where} has duplicate codes")
    return tuple(out)


def _opens(
    spec: dict[str, Any], service: str, roles: tuple[str, ...], profiles: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The ``features`` of ``service`` and what each role opens (``opens``): every role and
    profile listed (an empty list opens nothing), every feature declared once."""
    features = _strings(spec.get("features", []), f"{service}.features", _NAME)
    raw = spec.get("opens")
    if not features:
        if raw is not None:
            raise ConfigurationError(f"catalogue: {service}.opens needs {service}.features")
        return (), {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"catalogue: {service}.opens must map each role to features")
    every = set(roles) | set(profiles)
    if set(raw) != every:
        missing, unknown = sorted(every - set(raw)), sorted(set(raw) - every, key=str)
        raise ConfigurationError(
            f"catalogue: {service}.opens must list every role exactly "
            f"(missing {missing}, unknown {unknown})"
        )
    opens: dict[str, tuple[str, ...]] = {}
    for role in (*roles, *profiles):
        opened = _strings(raw[role], f"{service}.opens.{role}", _NAME)
        undeclared = sorted(set(opened) - set(features))
        if undeclared:
            raise ConfigurationError(
                f"catalogue: {service}.opens.{role} names undeclared features {undeclared}"
            )
        opens[role] = opened
    return features, opens


def parse_catalogue(data: Any) -> Catalogue:
    """Validate the catalogue's data and build it; raise ConfigurationError when it is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ConfigurationError("catalogue: a mapping with a 'services' mapping is required")
    known = {
        "label",
        "roles",
        "per_caf",
        "user_profiles",
        "system_groups",
        "former_names",
        "features",
        "opens",
    }
    services: dict[str, Service] = {}
    for name, spec in data["services"].items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(f"catalogue: invalid service name {name!r}")
        if not isinstance(spec, dict):
            raise ConfigurationError(f"catalogue: service {name} must be a mapping")
        unknown = set(spec) - known
        if unknown:
            raise ConfigurationError(
                f"catalogue: service {name} has unknown keys {sorted(unknown)}"
            )
        roles = _strings(spec.get("roles"), f"{name}.roles", _ROLE)
        if not roles:
            raise ConfigurationError(f"catalogue: service {name} needs at least one role")
        profiles = _strings(spec.get("user_profiles", []), f"{name}.user_profiles", _ROLE)
        if set(roles) & set(profiles):
            raise ConfigurationError(f"catalogue: {name} roles and user_profiles overlap")
        if not isinstance(spec.get("per_caf", False), bool):
            raise ConfigurationError(f"catalogue: {name}.per_caf must be true or false")
        label = spec.get("label", name)
        if not isinstance(label, str) or not label.strip():
            raise ConfigurationError(f"catalogue: {name}.label must be a non-empty string")
        features, opens = _opens(spec, name, roles, profiles)
        former = spec.get("former_names", [])
        if not isinstance(former, list) or not all(isinstance(n, str) and n for n in former):
            raise ConfigurationError(f"catalogue: {name}.former_names must be a list of strings")
        services[name] = Service(
            name=name,
            label=label,
            roles=roles,
            per_caf=spec.get("per_caf", False),
            user_profiles=profiles,
            system_groups=_system_groups(spec.get("system_groups", []), name, roles),
            former_names=tuple(former),
            features=features,
            opens=opens,
        )
    if not services:
        raise ConfigurationError("catalogue: no service")
    return Catalogue(services)


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read and validate the catalogue file (R-CAT-1)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"catalogue: cannot read {path}: {exc}") from exc
    return parse_catalogue(data)
