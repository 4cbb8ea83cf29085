"""The service catalogue as the API describes it (``GET /v1/catalogue``): what a client needs to
build its forms and to know which checks make sense (R-CAT)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pdp.core.catalogue import Catalogue


class SystemGroupOut(BaseModel):
    """A group the system makes for each open subscription to the service (R-GRP-3)."""

    code: str
    label: str
    role: str


class ServiceOut(BaseModel):
    """One online service of the portal."""

    name: str
    label: str
    former_names: list[str]
    per_caf: bool = Field(description="Consulted Caf by Caf: a check may name a Caf (R-CON-3).")
    roles: list[str] = Field(description="Roles a group may carry (R-GRP-4).")
    user_profiles: list[str] = Field(description="Roles held by a user directly (R-AFAS-1).")
    system_groups: list[SystemGroupOut]
    features: list[str] = Field(
        description="Parts of the service a check may ask for (``feature``); empty: a role "
        "opens the whole service."
    )
    opens: dict[str, list[str]] = Field(description="The features each role opens.")


class CatalogueOut(BaseModel):
    """Every service of the portal, by name."""

    services: list[ServiceOut]


def describe(catalogue: Catalogue) -> CatalogueOut:
    """The catalogue's public form, services by name."""
    return CatalogueOut(
        services=[
            ServiceOut(
                name=s.name,
                label=s.label,
                former_names=list(s.former_names),
                per_caf=s.per_caf,
                roles=list(s.roles),
                user_profiles=list(s.user_profiles),
                system_groups=[
                    SystemGroupOut(code=g.code, label=g.label, role=g.role) for g in s.system_groups
                ],
                features=list(s.features),
                opens={role: list(opened) for role, opened in s.opens.items()},
            )
            for _, s in sorted(catalogue.services.items())
        ]
    )
