"""The service catalogue is data, validated at start-up (R-CAT-1)."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import record_change
from pdp.adapters.sql.models import (
    Caf,
    Convention,
    Group,
    GroupRole,
    Membership,
    Organisation,
    Subscription,
    User,
)
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue, parse_catalogue
from pdp.core.errors import BadRequest, ConfigurationError
from pdp.engine.decision import Grant, Query
from pdp.engine.policy import PolicyEngine
from pdp.policies import CATALOGUE_PATH
from pdp.records.decision_log import MemoryLog
from pdp.services.decisions import DecisionService


def shipped() -> dict[str, Any]:
    """The shipped catalogue file as plain data, to derive variants from."""
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_shipped_catalogue_loads() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.services) == {"cdap", "afas", "dgfip", "adonis", "espace_bailleur"}
    cdap = catalogue.services["cdap"]
    assert cdap.roles == tuple(f"T{n}" for n in range(1, 22))
    assert cdap.per_caf and cdap.former_names == ("Cafpro",)
    afas = catalogue.services["afas"]
    assert afas.roles == ("declarer", "habiliter")
    assert set(afas.user_profiles) == {
        "declaration",
        "consultation",
        "suivi_dossiers",
        "gestion_paiements",
    }
    assert catalogue.services["dgfip"].roles == ("recouvrement", "enquete")
    assert catalogue.services["adonis"].roles == ("acces",)
    bailleur = catalogue.services["espace_bailleur"]
    assert bailleur.roles == ("parc_prive", "parc_conventionne")
    assert bailleur.system_groups and not catalogue.services["dgfip"].system_groups


def test_check_role_knows_roles_and_profiles() -> None:
    catalogue = load_catalogue()
    catalogue.check_role("cdap", None)
    catalogue.check_role("cdap", "T18")
    catalogue.check_role("afas", "consultation")  # a user profile may be asked for (R-AFAS-1)
    with pytest.raises(BadRequest) as unknown_service:
        catalogue.check_role("cafpro", None)  # former names are labels, not services
    assert unknown_service.value.code == "UNKNOWN_SERVICE"
    for service, role in (("cdap", "T22"), ("dgfip", "T1"), ("cdap", "consultation")):
        with pytest.raises(BadRequest) as unknown_role:
            catalogue.check_role(service, role)
        assert unknown_role.value.code == "UNKNOWN_ROLE"


def test_r_cat_1_features_and_what_each_role_opens() -> None:
    catalogue = load_catalogue()
    cdap = catalogue.services["cdap"]
    assert "paiements" in cdap.features and "dialogue" in cdap.features
    assert cdap.opened_by("dialogue") == {"T13", "T18", "T21"}
    assert cdap.opened_by("synthese") == set(cdap.roles)  # the example: every profile
    assert cdap.opened_by("inconnue") == frozenset()
    assert catalogue.services["adonis"].features == ()  # no features: a role opens it all
    catalogue.check_feature("cdap", None, "paiements")
    catalogue.check_feature("adonis", "acces", None)
    for service, role, feature, code in (
        ("cdap", None, "bulletins", "UNKNOWN_FEATURE"),
        ("adonis", None, "synthese", "UNKNOWN_FEATURE"),
        ("cdap", "T18", "paiements", "ROLE_AND_FEATURE"),
        ("nope", None, "synthese", "UNKNOWN_SERVICE"),
    ):
        with pytest.raises(BadRequest) as refused:
            catalogue.check_feature(service, role, feature)
        assert refused.value.code == code


def variant(path: list[str], value: Any, *, delete: bool = False) -> dict[str, Any]:
    """The shipped catalogue with the value at ``path`` replaced (or deleted)."""
    data = copy.deepcopy(shipped())
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(None, "'services' mapping", id="empty-file"),
        pytest.param([], "'services' mapping", id="list"),
        pytest.param({"services": []}, "'services' mapping", id="services-list"),
        pytest.param({"services": {}}, "no service", id="no-service"),
        pytest.param(
            variant(["services", "cdap", "colour"], "blue"), "unknown keys", id="unknown-key"
        ),
        pytest.param(
            variant(["services", "cdap", "role"], ["T1"]), "unknown keys", id="misspelt-roles"
        ),
        pytest.param(
            variant(["services", "dgfip", "roles"], ["enquete", "enquete"]),
            "duplicates",
            id="duplicate-role",
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], ["*"]), "invalid names", id="star-role"
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], ["acces", "*"]),
            "invalid names",
            id="star-among-roles",
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], ["with space"]),
            "invalid names",
            id="role-with-space",
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], []), "at least one role", id="no-roles"
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], None, delete=True),
            "list of strings",
            id="roles-missing",
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], "acces"), "list of strings", id="roles-string"
        ),
        pytest.param(
            variant(["services", "adonis", "roles"], [1]), "list of strings", id="role-number"
        ),
        pytest.param(
            variant(["services", "afas", "user_profiles"], ["declarer"]),
            "overlap",
            id="profile-is-a-role",
        ),
        pytest.param(
            variant(["services", "afas", "user_profiles"], ["x", "x"]),
            "duplicates",
            id="duplicate-profile",
        ),
        pytest.param(
            variant(["services", "cdap", "per_caf"], "yes"), "true or false", id="per-caf-string"
        ),
        pytest.param(
            variant(["services", "Cdap"], {"roles": ["T1"]}),
            "invalid service name",
            id="service-name",
        ),
        pytest.param(variant(["services", "x"], ["T1"]), "must be a mapping", id="service-list"),
        # R-GRP-3: the system groups a service makes are named, labelled and carry its roles.
        pytest.param(
            variant(["services", "espace_bailleur", "system_groups"], True),
            "must be a list",
            id="system-groups-flag",
        ),
        pytest.param(
            variant(
                ["services", "espace_bailleur", "system_groups"],
                [{"code": "EB-X", "label": "X", "role": "T1"}],
            ),
            "is not a role of espace_bailleur",
            id="system-group-foreign-role",
        ),
        pytest.param(
            variant(
                ["services", "espace_bailleur", "system_groups"],
                [{"code": "EB X", "label": "X", "role": "parc_prive"}],
            ),
            "invalid group code",
            id="system-group-code",
        ),
        pytest.param(
            variant(
                ["services", "espace_bailleur", "system_groups"],
                [{"code": "EB-X", "label": "X", "role": "parc_prive"}] * 2,
            ),
            "duplicate codes",
            id="system-group-twice",
        ),
        pytest.param(
            variant(
                ["services", "espace_bailleur", "system_groups"],
                [{"code": "EB-X", "role": "parc_prive"}],
            ),
            "exactly code, label and role",
            id="system-group-no-label",
        ),
        # R-CAT-1: the features of a service, and what each role opens, are data checked at
        # start-up: every role listed, every feature declared.
        pytest.param(
            variant(["services", "cdap", "features"], None, delete=True),
            "cdap.opens needs cdap.features",
            id="opens-without-features",
        ),
        pytest.param(
            variant(["services", "cdap", "opens", "T7"], None, delete=True),
            r"must list every role exactly \(missing \['T7'\]",
            id="opens-a-role-missing",
        ),
        pytest.param(
            variant(["services", "cdap", "opens", "T22"], ["synthese"]),
            r"unknown \['T22'\]",
            id="opens-an-unknown-role",
        ),
        pytest.param(
            variant(["services", "cdap", "opens", "T1"], ["synthese", "bulletins"]),
            r"undeclared features \['bulletins'\]",
            id="opens-an-undeclared-feature",
        ),
        pytest.param(
            variant(["services", "cdap", "features"], ["synthese", "synthese"]),
            "duplicates",
            id="feature-twice",
        ),
        pytest.param(
            variant(["services", "cdap", "opens"], ["T1"]),
            "must map each role to features",
            id="opens-a-list",
        ),
    ],
)
def test_bad_catalogues_are_refused(data: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_catalogue(data)


@pytest.mark.parametrize(
    ("path", "value"),
    [(["services", "cdap", "former_names"], "Cafpro"), (["services", "cdap", "label"], ["Cdap"])],
    ids=["former-names-string", "label-list"],
)
def test_names_and_labels_must_be_strings(path: list[str], value: Any) -> None:
    with pytest.raises(ConfigurationError):
        parse_catalogue(variant(path, value))


def test_the_control_variant_is_accepted() -> None:
    # The helper changes one thing only: a harmless change is accepted.
    assert (
        parse_catalogue(variant(["services", "adonis", "label"], "Adonis v2"))
        .services["adonis"]
        .label
        == "Adonis v2"
    )


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: {cdap: [", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_catalogue(broken)


def test_adding_a_service_is_a_data_change(tmp_path: Path) -> None:
    # R-CAT-1: "new services will come": one more entry in the file, no code.
    data = shipped()
    data["services"]["mon_enfant"] = {
        "label": "Mon enfant",
        "per_caf": True,
        "roles": ["consulter", "reserver"],
    }
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    catalogue = load_catalogue(path)
    service = catalogue.services["mon_enfant"]
    assert (service.label, service.roles, service.per_caf) == (
        "Mon enfant",
        ("consulter", "reserver"),
        True,
    )
    catalogue.check_role("mon_enfant", "reserver")
    with pytest.raises(BadRequest):
        catalogue.check_role("mon_enfant", "T1")
    with pytest.raises(BadRequest):
        load_catalogue().check_role("mon_enfant", None)
    assert set(load_catalogue().services) < set(catalogue.services)


def test_a_new_service_is_decided_like_any_other(db: SqlEngine) -> None:
    # R-CAT-1 end to end: subscribed, carried by a group, asked through the decision service.
    catalogue = parse_catalogue(variant(["services", "mon_enfant"], {"roles": ["consulter"]}))
    day = dt.date(2026, 3, 16)
    with sessionmaker(db).begin() as session:
        caf = Caf(code="751", name="Caf de Paris")
        org = Organisation(code="creche", name="Crèche", opens_on=day)
        session.add_all([caf, org])
        session.flush()
        conv = Convention(organisation_id=org.id, caf_id=caf.id, reference="C", opens_on=day)
        session.add(conv)
        session.flush()
        session.add(Subscription(convention_id=conv.id, service="mon_enfant", opens_on=day))
        user = User(login="sam", organisation_id=org.id, opens_on=day)
        group = Group(
            organisation_id=org.id, convention_id=conv.id, code="G", label="G", opens_on=day
        )
        session.add_all([user, group])
        session.flush()
        session.add(
            GroupRole(group_id=group.id, service="mon_enfant", role="consulter", opens_on=day)
        )
        session.add(Membership(user_id=user.id, group_id=group.id, opens_on=day))
        record_change(session, [None], "new service")
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue, clock=lambda: day)
    engine.load()
    service = DecisionService(engine, catalogue, MemoryLog())
    decision = service.check(Query("sam", "mon_enfant", "consulter")).decision
    assert decision.allowed
    assert decision.grants == (Grant("mon_enfant", "consulter", "G"),)
    with pytest.raises(BadRequest) as refused:
        service.check(Query("sam", "mon_enfant", "reserver"))
    assert refused.value.code == "UNKNOWN_ROLE"
    # The same store under the shipped catalogue: the service does not exist.
    with pytest.raises(BadRequest) as unknown:
        DecisionService(engine, load_catalogue(), MemoryLog()).check(Query("sam", "mon_enfant"))
    assert unknown.value.code == "UNKNOWN_SERVICE"
