"""Administration API: the Caf side (organisations, conventions, subscriptions, partner admins,
R-CON-4) and Afas profiles (R-AFAS)."""

from __future__ import annotations

from flask import Blueprint, Response

from pdp.services.admin import afas, contracts, subscriptions
from pdp.services.admin.requests import (
    AfasProfileNew,
    ConventionNew,
    DatesEdit,
    OrganisationNew,
    SubscriptionNew,
    UserRef,
)
from pdp.services.admin.responses import (
    AdminEnded,
    AdminWritten,
    AfasProfiles,
    AfasProfileWritten,
    ContractOut,
    ConventionWritten,
    OrganisationList,
    OrganisationWritten,
    SubscriptionWritten,
)
from pdp.web.api.admin_common import AUTH_ERRORS, actor, answer, body
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("admin_contracts", __name__, url_prefix="/v1")


@route(
    bp,
    "POST",
    "/organisations",
    summary="Register a partner organisation (operators, R-CON-4)",
    response=OrganisationWritten,
    body=OrganisationNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def create_organisation() -> Response:
    """R-CON-4."""
    who = actor()
    data = body(OrganisationNew)
    return answer(contracts.create_organisation(services().admin, who, data), 201)


@route(
    bp,
    "GET",
    "/organisations",
    summary="Every registered organisation, by code (operators, R-CON-4)",
    response=OrganisationList,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_organisations() -> Response:
    """Operators only (organisation.list)."""
    who = actor()
    return answer(contracts.list_organisations(services().admin, who))


@route(
    bp,
    "GET",
    "/organisations/<org>/contract",
    summary="The organisation's conventions, subscriptions and partner admins (R-CON-4, R-ADM-5)",
    response=ContractOut,
    errors=AUTH_ERRORS,
    auth=True,
)
def contract(org: str) -> Response:
    """Operators, and the organisation's partner admins (read only)."""
    who = actor()
    return answer(contracts.contract(services().admin, who, org))


@route(
    bp,
    "POST",
    "/organisations/<org>/conventions",
    summary="Register a convention with a Caf (operators, R-CON-1)",
    response=ConventionWritten,
    body=ConventionNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def add_convention(org: str) -> Response:
    """R-CON-1."""
    who = actor()
    data = body(ConventionNew)
    return answer(contracts.add_convention(services().admin, who, org, data), 201)


@route(
    bp,
    "PATCH",
    "/organisations/<org>/conventions/<reference>",
    summary="Change a convention's dates; closing it closes its subscriptions (R-CON-2, R-TIME-2)",
    response=ConventionWritten,
    body=DatesEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_convention(org: str, reference: str) -> Response:
    """R-CON-2."""
    who = actor()
    data = body(DatesEdit)
    return answer(contracts.edit_convention(services().admin, who, org, reference, data))


@route(
    bp,
    "POST",
    "/organisations/<org>/conventions/<reference>/subscriptions",
    summary="Subscribe the organisation to a service under a convention (R-CON-1, R-CON-2)",
    response=SubscriptionWritten,
    body=SubscriptionNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def add_subscription(org: str, reference: str) -> Response:
    """R-CON-1."""
    who = actor()
    data = body(SubscriptionNew)
    return answer(subscriptions.add_subscription(services().admin, who, org, reference, data), 201)


@route(
    bp,
    "PATCH",
    "/organisations/<org>/subscriptions/<int:subscription_id>",
    summary="Change a subscription's dates; closes_on ends it (R-CON-2, R-TIME-2)",
    response=SubscriptionWritten,
    body=DatesEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_subscription(org: str, subscription_id: int) -> Response:
    """R-CON-2."""
    who = actor()
    data = body(DatesEdit)
    return answer(
        subscriptions.edit_subscription(services().admin, who, org, subscription_id, data)
    )


@route(
    bp,
    "PATCH",
    "/organisations/<org>/conventions/<reference>/subscriptions/<service>",
    summary="The same change, the subscription named by its convention and service (the one that "
    "has not ended)",
    response=SubscriptionWritten,
    body=DatesEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def edit_service_subscription(org: str, reference: str, service: str) -> Response:
    """R-CON-2; 409 AMBIGUOUS_SUBSCRIPTION when one is open and another to come."""
    who = actor()
    data = body(DatesEdit)
    edited = subscriptions.edit_service_subscription(
        services().admin, who, org, reference, service, data
    )
    return answer(edited)


@route(
    bp,
    "POST",
    "/organisations/<org>/admins",
    summary="Designate a partner admin, possibly a user created now (operators, R-ADM-1)",
    response=AdminWritten,
    body=UserRef,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def designate_admin(org: str) -> Response:
    """R-ADM-1: at most two open partner admins."""
    who = actor()
    data = body(UserRef)
    return answer(contracts.designate_admin(services().admin, who, org, data), 201)


@route(
    bp,
    "DELETE",
    "/organisations/<org>/admins/<login>",
    summary="End a partner admin designation (today, or on the body's closes_on; R-TIME-2)",
    response=AdminEnded,
    body=DatesEdit,
    errors=AUTH_ERRORS,
    auth=True,
)
def end_admin(org: str, login: str) -> Response:
    """Nothing is deleted: the designation ends (R-TIME-2)."""
    who = actor()
    data = body(DatesEdit)
    return answer(contracts.end_admin(services().admin, who, org, login, data))


@route(
    bp,
    "GET",
    "/organisations/<org>/users/<login>/afas-profiles",
    summary="A user's Afas profiles (members of an AFAS – Habiliter group, R-AFAS-2)",
    response=AfasProfiles,
    errors=AUTH_ERRORS,
    auth=True,
)
def list_afas_profiles(org: str, login: str) -> Response:
    """R-AFAS-1."""
    who = actor()
    return answer(afas.list_profiles(services().admin, who, org, login))


@route(
    bp,
    "POST",
    "/organisations/<org>/users/<login>/afas-profiles",
    summary="Give a user an Afas profile (members of an AFAS – Habiliter group, R-AFAS-2)",
    response=AfasProfileWritten,
    body=AfasProfileNew,
    errors=AUTH_ERRORS,
    status=201,
    auth=True,
)
def add_afas_profile(org: str, login: str) -> Response:
    """R-AFAS-1, R-AFAS-2."""
    who = actor()
    data = body(AfasProfileNew)
    return answer(afas.add_profile(services().admin, who, org, login, data), 201)


@route(
    bp,
    "DELETE",
    "/organisations/<org>/users/<login>/afas-profiles/<profile>",
    summary="Remove a user's Afas profile: it closes today (R-AFAS-3, R-TIME-2)",
    response=AfasProfileWritten,
    errors=AUTH_ERRORS,
    auth=True,
)
def remove_afas_profile(org: str, login: str, profile: str) -> Response:
    """Nothing is deleted (R-TIME-2)."""
    who = actor()
    return answer(afas.remove_profile(services().admin, who, org, login, profile))
