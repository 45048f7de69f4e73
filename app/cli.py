"""``flask --app run clinic ...``: set up, seed and operate an installation."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate import upgrade

from app.demo import DEMO_USERS, DemoRefusedError, demo_password_file, seed_demo
from app.extensions import db
from app.jobs.worker import make_worker
from app.security.sync import sync_permissions
from app.services.audit import acting_as
from app.services.audit_chain import seal_pending, verify_chain
from app.services.org import ensure_organisation

clinic = AppGroup("clinic", help="ClinicDesk set-up and operations.")


@clinic.command("init")
def init_command() -> None:
    """Bring the database to the latest schema and sync roles and permissions (safe to repeat)."""
    upgrade(directory=current_app.extensions["migrate"].directory)
    with acting_as("cli:clinic init"):
        report = sync_permissions(current_app.appbuilder)
        ensure_organisation()
        db.session.commit()
    if report.changed:
        click.echo(
            f"Permissions synced: {len(report.granted)} granted, {len(report.revoked)} revoked, "
            f"{len(report.roles_created)} roles created."
        )
    else:
        click.echo("Database at the latest schema; roles and permissions already up to date.")


@clinic.command("seed-demo")
@click.option("--password", help="Password for every demo user (default: random, kept in instance/).")
@click.option("--if-empty", is_flag=True, help="Only seed a database that has no users yet.")
def seed_demo_command(password: str | None, if_empty: bool) -> None:
    """Create or refresh the demo clinic: two branches and one user per role."""
    if if_empty and current_app.appbuilder.sm.count_users():
        click.echo("Users exist already: demo data not loaded.")
        return
    try:
        with acting_as("cli:seed-demo"):
            usernames, password = seed_demo(password)
    except DemoRefusedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Demo clinic ready: {len(usernames)} users.")
    _print_logins(usernames, password)


@clinic.command("demo-logins")
def demo_logins_command() -> None:
    """Print the demo users and their password, if the demo clinic was seeded here."""
    path = demo_password_file()
    if not path.exists():
        click.echo("No demo data here yet: run `flask --app run clinic seed-demo`.")
        return
    _print_logins([user.username for user in DEMO_USERS], path.read_text().strip())


@clinic.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker_command(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with its scheduler) for queued, delayed and retried jobs."""
    if current_app.config.get("JOBS_INLINE"):
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker is needed.")
    worker = make_worker(current_app._get_current_object(), list(queues) or None)
    worker.work(burst=burst, with_scheduler=True)


@clinic.command("audit-verify")
def audit_verify_command() -> None:
    """Seal waiting audit entries, then check every link of the audit trail's hash chain.

    Exits with status 1 and names the first broken link when an entry was changed, deleted,
    inserted or reordered in the database.
    """
    sealed_now = seal_pending()
    report = verify_chain()
    if not report.ok:
        click.echo(
            f"Audit chain BROKEN at seq {report.broken_seq}: {report.reason}. "
            f"{report.sealed} entries before it verified.",
            err=True,
        )
        raise SystemExit(1)
    click.echo(
        f"Audit chain OK: {report.sealed} entries linked and verified "
        f"({sealed_now} sealed just now, {report.pending} waiting)."
    )


def _print_logins(usernames: list[str], password: str) -> None:
    roles = {user.username: user.role for user in DEMO_USERS}
    click.echo("Demo logins (password for all: %s)" % password)
    for username in usernames:
        click.echo(f"  {username:<12} {roles.get(username, '')}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(clinic)
