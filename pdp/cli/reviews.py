"""``pdp reviews close-due``: close the access reviews whose due date has passed (R-CNIL-26),
to be run once a day (cron, a Kubernetes CronJob)."""

from __future__ import annotations

import sys

import click

from pdp.core.config import Settings


@click.group()
def reviews() -> None:
    """Access reviews (revue des habilitations, R-CNIL-20..29)."""


@reviews.command("close-due")
def close_due_cmd() -> None:
    """Close every open review past its due date, as the one who opened it: what is left
    unreviewed is reported, and removed if the review was opened so. Exits 1 if one could not
    be closed (its refusal printed)."""
    from pdp.core.errors import PdpError
    from pdp.core.masking import Masker
    from pdp.records.audit_trail import AuditChain
    from pdp.records.decision_log import open_log
    from pdp.services.admin.service import AdminService
    from pdp.services.reviews.campaigns import close_due
    from pdp.web.app import build_engine

    settings = Settings.from_env(verify_orgs=0)
    engine, db = build_engine(settings)
    decision_log, _shipper = open_log(settings, db)
    masker = Masker(settings.log_mask, settings.log_mask_key.get_secret_value())
    audit = AuditChain(settings.audit_key.get_secret_value(), masker)
    svc = AdminService(db, engine, engine.catalogue, audit, decision_log, None, masker)
    failed = False
    for campaign, outcome in close_due(svc):
        if isinstance(outcome, PdpError):
            failed = True
            click.echo(f"review {campaign}: error {outcome.code}: {outcome.message}", err=True)
        else:
            click.echo(
                f"review {campaign}: closed, {outcome.reported} reported, {outcome.removed} removed"
            )
    if failed:
        sys.exit(1)
