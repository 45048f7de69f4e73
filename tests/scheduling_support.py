"""A clinic of the scheduling tests' own: two branches, their doctors and desks, three patients.

The demo seed may hold rosters, holidays and a month of appointments for the demo users; these
tests book only with people and branches made here, so demo data never collides with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.extensions import db
from app.models.org import Branch
from app.models.patients import Patient
from app.security import policy
from app.services.audit import acting_as
from app.services.patients import register_patient
from tests.conftest import PASSWORD


@dataclass
class Team:
    alder: int  # branch "Alder Clinic"
    birch: int  # branch "Birch Clinic"
    doc_a: int  # Anita Kapoor, Alder only
    doc_b: int  # Bharat Shetty, Birch only
    rover: int  # Roshan Varma, both branches
    desk_a: int  # receptionist at Alder ("desk_a")
    desk_b: int  # receptionist at Birch ("desk_b")
    patients: tuple[int, int, int]  # Asha Qwertyson, Bala Zyxwright, Chitra Plumtree


def make_team(app) -> Team:
    """Create the branches, users and patients (once per test module's database)."""
    with app.app_context(), acting_as("test:setup"):
        sm = app.appbuilder.sm
        alder = Branch(name="Alder Clinic", code="AL", country="IN", time_zone="Asia/Kolkata",
                       currency="INR")
        birch = Branch(name="Birch Clinic", code="BI", country="IN", time_zone="Asia/Kolkata",
                       currency="INR")
        db.session.add_all([alder, birch])
        db.session.flush()
        people = {}
        for username, first, last, role, branches in (
            ("doc_a", "Anita", "Kapoor", policy.DOCTOR, [alder]),
            ("doc_b", "Bharat", "Shetty", policy.DOCTOR, [birch]),
            ("rover", "Roshan", "Varma", policy.DOCTOR, [alder, birch]),
            ("desk_a", "Deepa", "Alva", policy.RECEPTIONIST, [alder]),
            ("desk_b", "Dinesh", "Bose", policy.RECEPTIONIST, [birch]),
        ):
            user = sm.add_user(username, first, last, f"{username}@example.org",
                               sm.find_role(role), password=PASSWORD)
            user.branches = branches
            people[username] = user.id
        patients = []
        for first, last in (("Asha", "Qwertyson"), ("Bala", "Zyxwright"), ("Chitra", "Plumtree")):
            patient = Patient(first_name=first, last_name=last, sex="female",
                              registered_branch_id=alder.id)
            register_patient(patient)
            patients.append(patient.id)
        db.session.commit()
        return Team(alder=alder.id, birch=birch.id, patients=tuple(patients), **people)
