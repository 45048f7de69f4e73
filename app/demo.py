"""Demo data: a believable two-branch clinic with one user per role.

Idempotent: running it again updates what it made and adds nothing twice. Never in production.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.org import Branch
from app.security import policy
from app.services.org import ensure_organisation


class DemoRefusedError(RuntimeError):
    """Demo data was asked for where it must never go (the production configuration)."""


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    role: str
    branch_codes: tuple[str, ...]


DEMO_BRANCHES = (
    {
        "code": "DT",
        "name": "Downtown Clinic",
        "address": "12 Market Street\nSpringfield 560001",
        "phone": "+918041234567",
        "email": "downtown@example.org",
        "country": "IN",
        "time_zone": "Asia/Kolkata",
        "currency": "INR",
        "tax_id": "29ABCDE1234F1Z5",
        "letterhead_text": "Family medicine · Dentistry · Laboratory",
        "fy_start_month": 4,
    },
    {
        "code": "LS",
        "name": "Lakeside Dental",
        "address": "4 Lake View Road\nSpringfield 560034",
        "phone": "+918049876543",
        "email": "lakeside@example.org",
        "country": "IN",
        "time_zone": "Asia/Kolkata",
        "currency": "INR",
        "tax_id": "29ABCDE1234F2Z4",
        "letterhead_text": "Dental care for the whole family",
        "fy_start_month": 4,
    },
)

DEMO_USERS = (
    DemoUser("admin", "Asha", "Rao", policy.ADMIN, ("DT",)),
    DemoUser("owner", "Vikram", "Mehta", policy.OWNER, ("DT", "LS")),
    DemoUser("doctor", "Priya", "Nair", policy.DOCTOR, ("DT",)),
    DemoUser("reception", "Rahul", "Iyer", policy.RECEPTIONIST, ("DT",)),
    DemoUser("pharmacist", "Meera", "Kulkarni", policy.PHARMACIST, ("DT",)),
    DemoUser("labtech", "Arjun", "Das", policy.LAB_TECHNICIAN, ("DT",)),
    DemoUser("accountant", "Kavya", "Menon", policy.ACCOUNTANT, ("DT",)),
    DemoUser("doctor2", "Sanjay", "Gupta", policy.DOCTOR, ("LS",)),
    DemoUser("reception2", "Neha", "Joshi", policy.RECEPTIONIST, ("LS",)),
)


def demo_password_file() -> Path:
    return Path(current_app.instance_path) / "demo_password"


def demo_password(explicit: str | None) -> str:
    """The password demo users get: the one given, else the one kept in instance/, else a new one."""
    path = demo_password_file()
    if explicit:
        password = explicit
    elif path.exists():
        password = path.read_text().strip()
    else:
        password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def seed_branches() -> dict[str, Branch]:
    branches = {}
    for data in DEMO_BRANCHES:
        branch = db.session.scalar(select(Branch).where(Branch.code == data["code"]))
        if branch is None:
            branch = Branch(**data)
            db.session.add(branch)
        branches[data["code"]] = branch
    db.session.flush()
    return branches


def seed_users(password: str, branches: dict[str, Branch]) -> list[str]:
    sm = current_app.appbuilder.sm
    names = []
    for demo in DEMO_USERS:
        role = sm.find_role(demo.role)
        if role is None:
            raise DemoRefusedError(f"role {demo.role!r} is missing: run `clinic init` first")
        user = sm.find_user(username=demo.username)
        if user is None:
            user = sm.add_user(
                demo.username,
                demo.first_name,
                demo.last_name,
                f"{demo.username}@example.org",
                role,
                password=password,
                commit=False,
            )
        else:
            sm.reset_password(user.id, password)
        user.roles = [role]
        user.branches = [branches[code] for code in demo.branch_codes]
        names.append(demo.username)
    return names


def seed_demo(password: str | None = None) -> tuple[list[str], str]:
    """Create or refresh the demo clinic; return the usernames and their shared password.

    :raises DemoRefusedError: under the production configuration.
    """
    if current_app.config.get("ENV_NAME") == "production":
        raise DemoRefusedError("demo data is never loaded into a production installation")
    organisation = ensure_organisation()
    organisation.name = "Springfield Family Clinics"
    organisation.legal_name = organisation.legal_name or "Springfield Family Clinics LLP"
    organisation.email = organisation.email or "hello@example.org"
    branches = seed_branches()
    password = demo_password(password)
    usernames = seed_users(password, branches)
    db.session.commit()
    return usernames, password
