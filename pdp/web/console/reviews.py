""" "Revue des habilitations": the access reviews in the console (R-CNIL-20..29). Operators and
partner admins open a campaign and close it; each reviewer keeps or removes their own items
(removing asks first, with what the detach will do: its preview); the results download as CSV
or JSON. Views parse the form, call ``pdp.services.reviews`` and render."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, g, redirect, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response

from pdp.core.errors import NotFound, PdpError
from pdp.engine.actions import Action
from pdp.services.reviews import campaigns, decisions, reads, results
from pdp.services.reviews.requests import CampaignNew, ItemDecision
from pdp.web.console import auth
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, consequences, form_page, page
from pdp.web.container import services

REVIEWS = "/revues"
ITEMS_PAGE = 500  # a reviewer's items on one page


def number(text: str) -> int:
    """A campaign or item number from the path; NotFound for anything else (the routes take
    any text, so that an anonymous visitor is sent to the sign-in page first)."""
    if not text.isdigit() or len(text) > 12:
        raise NotFound("Campagne ou élément de revue inconnu.", code="REVIEW_UNKNOWN")
    return int(text)


@bp.context_processor
def _menu() -> dict[str, Any]:
    login = g.get("console_login")
    return {"menu_reviews": bool(login) and reads.involved(services().admin, login)}


def _may_open() -> tuple[bool, str | None]:
    """Whether the signed-in user may open a campaign, and over which organisation (None: an
    operator, who names them)."""
    home = auth.home_organisation(actor())
    if home is None:
        return services().engine.index.users[actor()].is_operator, None
    return allowed(Action.REVIEW_OPEN, f"organisation:{home}"), home


@bp.get(REVIEWS)
def reviews_list() -> Response:
    """The campaigns the signed-in user follows or reviews in."""
    may_open, _ = _may_open()
    listing = reads.list_campaigns(services().admin, actor())
    return page("reviews.html", campaigns=listing.campaigns, may_open=may_open)


def _new_form(status: int = 200, error: PdpError | None = None, **context: Any) -> Response:
    _, home = _may_open()
    default = (services().admin.today() + dt.timedelta(days=30)).isoformat()
    values = request.form if request.method == "POST" else {"due_on": default}
    return form_page("review_form.html", status, error, home=home, values=values, **context)


@bp.get(f"{REVIEWS}/nouvelle")
def review_new() -> Response:
    """The form opening a campaign (R-CNIL-20)."""
    return _new_form()


@bp.post(f"{REVIEWS}/nouvelle")
def review_open() -> Response:
    """R-CNIL-20: open the campaign; its items are what exists now (R-CNIL-21)."""
    _, home = _may_open()
    form = request.form
    named = [c.strip() for c in form.get("organisations", "").split(",") if c.strip()]
    everyone = home is None and form.get("all_organisations") == "on"
    try:
        data = CampaignNew.model_validate(
            {
                "title": form.get("title") or "Revue des habilitations",
                "organisations": [home] if home else named,
                "all_organisations": everyone,
                "due_on": form.get("due_on", ""),
                "remove_unreviewed": form.get("remove_unreviewed") == "on",
            }
        )
    except ValidationError:
        errors = {"due_on": "Indiquer une date d'échéance (AAAA-MM-JJ) et des codes d'organisme."}
        return _new_form(400, errors=errors)
    try:
        opened = campaigns.open_campaign(services().admin, actor(), data)
    except PdpError as exc:
        return _new_form(error=exc)
    flash(f"Campagne ouverte : {opened.items} élément(s) à revoir.", "success")
    return redirect(url_for("console.review_view", campaign_ref=opened.campaign.id))


@bp.get(f"{REVIEWS}/<campaign_ref>")
def review_view(campaign_ref: str) -> Response:
    """R-CNIL-23, R-CNIL-25: the campaign's progress and the signed-in user's own items."""
    campaign = number(campaign_ref)
    svc = services().admin
    detail = reads.detail(svc, actor(), campaign)
    mine = reads.my_items(svc, actor(), campaign, ITEMS_PAGE)
    follows = bool(reads.followed(svc, actor(), detail.campaign.organisations, first=True))
    return page("review.html", detail=detail, items=mine.items, follows=follows)


def _comment() -> str | None:
    return request.form.get("comment", "").strip() or None


def _decision(decision: str) -> ItemDecision:
    return ItemDecision.model_validate({"decision": decision, "comment": _comment()})


@bp.post(f"{REVIEWS}/<campaign_ref>/elements/<item_ref>/conserver")
def review_keep(campaign_ref: str, item_ref: str) -> Response:
    """R-CNIL-24: keep the item (recorded, no right changes)."""
    campaign = number(campaign_ref)
    item = number(item_ref)
    out = decisions.decide(services().admin, actor(), campaign, item, _decision("keep"))
    flash(f"Conservé : {out.item.login} dans le groupe {out.item.group}.", "success")
    return redirect(url_for("console.review_view", campaign_ref=campaign))


@bp.get(f"{REVIEWS}/<campaign_ref>/elements/<item_ref>/retirer")
def review_remove_confirm(campaign_ref: str, item_ref: str) -> Response:
    """R-CNIL-24: the confirmation asked before removing, with what the detach will do."""
    campaign = number(campaign_ref)
    item = number(item_ref)
    svc = services().admin
    mine = reads.my_item(svc, actor(), campaign, item)
    preview = consequences(
        lambda: decisions.decide(svc, actor(), campaign, item, _decision("remove"))
    )
    return page("review_remove.html", campaign=campaign, item=mine, preview=preview)


@bp.post(f"{REVIEWS}/<campaign_ref>/elements/<item_ref>/retirer")
def review_remove(campaign_ref: str, item_ref: str) -> Response:
    """R-CNIL-24: remove the item: the user is detached from the group today."""
    campaign = number(campaign_ref)
    item = number(item_ref)
    out = decisions.decide(services().admin, actor(), campaign, item, _decision("remove"))
    flash(
        f"Retiré : {out.item.login} est détaché(e) du groupe {out.item.group} à compter "
        "d'aujourd'hui.",
        "success",
    )
    return redirect(url_for("console.review_view", campaign_ref=campaign))


@bp.get(f"{REVIEWS}/<campaign_ref>/cloturer")
def review_close_confirm(campaign_ref: str) -> Response:
    """R-CNIL-26: the confirmation asked before closing, with what is left unreviewed."""
    campaign = number(campaign_ref)
    svc = services().admin
    detail = reads.detail(svc, actor(), campaign)
    pending = sum(p.pending for p in detail.by_organisation)
    preview = consequences(lambda: campaigns.close_campaign(svc, actor(), campaign))
    return page("review_close.html", detail=detail, pending=pending, preview=preview)


@bp.post(f"{REVIEWS}/<campaign_ref>/cloturer")
def review_close(campaign_ref: str) -> Response:
    """R-CNIL-26: close the campaign."""
    campaign = number(campaign_ref)
    out = campaigns.close_campaign(services().admin, actor(), campaign)
    flash(
        f"Campagne close : {out.reported} élément(s) non revu(s) signalé(s), "
        f"{out.removed} retiré(s).",
        "success",
    )
    return redirect(url_for("console.review_view", campaign_ref=campaign))


@bp.get(f"{REVIEWS}/<campaign_ref>/resultats.<fmt>")
def review_results(campaign_ref: str, fmt: str) -> Response:
    """R-CNIL-27: the results, as CSV or JSON, over the organisations the user follows."""
    campaign = number(campaign_ref)
    if fmt not in ("csv", "json"):
        return page("error.html", 404, title="Page introuvable", message="Format inconnu.")
    found = results.results(services().admin, actor(), campaign)
    disposition = f'attachment; filename="revue-{campaign}.{fmt}"'
    return Response(
        found.chunks(fmt),
        mimetype=results.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": disposition},
    )
