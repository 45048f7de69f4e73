"""Demo data: a believable two-branch clinic with one user per role.

Idempotent: running it again updates what it made and adds nothing twice. Never in production.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.demo_clinical import seed_clinical
from app.demo_leads import seed_leads
from app.extensions import db
from app.models.org import Branch
from app.models.patients import Patient, PatientClinical
from app.security import policy
from app.services.org import ensure_organisation, normalise_phone
from app.services.patients import phone_digits, register_patient, search_key, update_patient


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
    # A second lab technician: results are verified by someone other than who entered them.
    # (Not "labtech2": tests/test_lab.py makes a user of that name for itself.)
    DemoUser("labtech_b", "Fatima", "Sheikh", policy.LAB_TECHNICIAN, ("DT",)),
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


FIRST_NAMES = (
    "Aarav", "Ananya", "Rohan", "Diya", "Ishaan", "Saanvi", "Kabir", "Meenakshi", "Arnav", "Lakshmi",
    "Vihaan", "Pooja", "Aditya", "Sneha", "Karthik", "Divya", "Siddharth", "Anjali", "Farhan", "Zoya",
)
LAST_NAMES = (
    "Sharma", "Reddy", "Pillai", "Banerjee", "Khan", "Fernandes", "Chatterjee", "Hegde", "Patil",
    "Srinivasan", "D'Souza", "Bhat", "Naidu", "Kapoor", "Menon",
)
LANGUAGES = ("English", "Hindi", "Kannada", "Tamil", "Malayalam", "Telugu")
#: How many demo patients the first batch has; two more are near-duplicates of two of them.
DEMO_PATIENTS = 60


def demo_patient_rows() -> list[dict]:
    """Believable patients, the same on every run (numbered phones keep them apart)."""
    rows = []
    for n in range(DEMO_PATIENTS):
        first = FIRST_NAMES[n % len(FIRST_NAMES)]
        last = LAST_NAMES[(n * 7) % len(LAST_NAMES)]
        rows.append(
            {
                "first_name": first,
                "last_name": last,
                "date_of_birth": date(1950, 1, 1) + timedelta(days=(n * 379) % 25000),
                "sex": "female" if first in FIRST_NAMES[1::2] else "male",
                "phone": f"+9198450{n:05d}",
                "email": f"{first.lower()}.{n}@example.org" if n % 3 else None,
                "address": f"{10 + n} {('MG', 'Church', 'Brigade', 'Residency')[n % 4]} Road\nSpringfield",
                "preferred_language": LANGUAGES[n % len(LANGUAGES)],
                "branch": "DT" if n % 3 else "LS",
                "consent_sms": n % 2 == 0,
                "consent_email": n % 3 == 1,
                "consent_whatsapp": n % 4 == 0,
                "consent_marketing": n % 10 == 0,
            }
        )
    # Near-duplicates: a second registration of the same person, typed differently.
    rows.append({**rows[1], "first_name": rows[1]["first_name"].upper(), "email": None,
                 "phone": "098450 00001", "branch": "LS"})
    rows.append({**rows[4], "phone": "+919845099999", "email": None})
    return rows + more_patient_rows()


@dataclass(frozen=True)
class Community:
    """Names that go together, and the languages their speakers ask for."""

    women: tuple[str, ...]
    men: tuple[str, ...]
    surnames: tuple[str, ...]
    languages: tuple[str, ...]


SOUTH = Community(
    ("Bhavana", "Kavitha", "Lavanya", "Rekha", "Sumathi", "Jyothi", "Padma", "Anusha", "Nandini", "Aparna"),
    ("Venkatesh", "Suresh", "Prakash", "Anand", "Ravi", "Ganesh", "Manjunath", "Naveen", "Harish", "Tejas"),
    ("Gowda", "Iyengar", "Rao", "Shetty", "Subramanian", "Kamath", "Acharya", "Prabhu", "Ramachandran",
     "Nair", "Desai", "Murthy"),
    ("Kannada", "Tamil", "Telugu", "Malayalam", "English", "Konkani"),
)
NORTH = Community(
    ("Aditi", "Sunita", "Geeta", "Shalini", "Tanvi", "Ishita", "Riya", "Kriti", "Shreya", "Roshni"),
    ("Nikhil", "Rajesh", "Deepak", "Yash", "Pranav", "Dhruv", "Varun", "Sandeep", "Amit", "Rohit"),
    ("Agarwal", "Chopra", "Malhotra", "Mishra", "Pandey", "Saxena", "Sinha", "Thakur", "Yadav", "Jain",
     "Bose", "Mukherjee", "Dutta"),
    ("Hindi", "English", "Bengali", "Marathi"),
)
MUSLIM = Community(
    ("Ayesha", "Sana", "Fathima", "Nazia", "Rukhsar"),
    ("Mohammed", "Imran", "Abdul", "Faisal", "Sameer"),
    ("Qureshi", "Ansari", "Siddiqui", "Pasha", "Baig"),
    ("Urdu", "Hindi", "Kannada", "English"),
)
CHRISTIAN = Community(
    ("Mary", "Reshma", "Teresa", "Anita", "Grace"),
    ("Joseph", "Thomas", "Sebastian", "George", "Francis"),
    ("Kurian", "Mathew", "Varghese", "Pinto", "Rodrigues"),
    ("Malayalam", "English", "Konkani"),
)
PUNJABI = Community(
    ("Harpreet", "Manpreet", "Simran", "Jaspreet"),
    ("Gurpreet", "Harjeet", "Amandeep", "Jaspal"),
    ("Gill", "Sandhu", "Dhillon", "Grewal"),
    ("Punjabi", "Hindi", "English"),
)
#: How often each community comes to the clinic (Bangalore-like), as a repeating pattern.
COMMUNITY_PATTERN = (SOUTH, NORTH, SOUTH, MUSLIM, SOUTH, CHRISTIAN, NORTH, SOUTH, PUNJABI)
#: Patients from elsewhere, with the accents their names carry: (first, last, sex, language).
VISITORS = (
    ("Zoë", "Laurent", "female", "French"), ("José", "Fernandes", "male", "Konkani"),
    ("Renée", "Dubois", "female", "French"), ("François", "Lefèvre", "male", "French"),
    ("Chloé", "Martin", "female", "French"), ("Björn", "Andersson", "male", "English"),
    ("Søren", "Nørgaard", "male", "English"), ("Inés", "Navarro", "female", "Spanish"),
    ("Mateo", "Romero", "male", "Spanish"), ("Lucía", "Castillo", "female", "Spanish"),
    ("Hannah", "Schmidt", "female", "German"), ("Jürgen", "Müller", "male", "German"),
    ("Oliver", "Bennett", "male", "English"), ("Emma", "Clarke", "female", "English"),
    ("Liam", "O'Connor", "male", "English"), ("Siobhán", "Ní Bhriain", "female", "English"),
    ("Yuki", "Tanaka", "female", "Japanese"), ("Hiroshi", "Watanabe", "male", "Japanese"),
    ("Mei", "Chen", "female", "English"), ("Wei", "Zhang", "male", "English"),
    ("Amara", "Okafor", "female", "English"), ("Kwame", "Mensah", "male", "English"),
    ("Layla", "Haddad", "female", "Arabic"), ("Omar", "Farouk", "male", "Arabic"),
    ("Olga", "Ivanova", "female", "Russian"), ("Dmitri", "Volkov", "male", "Russian"),
    ("João", "Silva", "male", "Portuguese"), ("Ana", "Costa", "female", "Portuguese"),
    ("Giulia", "Rossi", "female", "English"), ("Marek", "Kowalski", "male", "English"),
    ("Noémie", "Girard", "female", "French"), ("Ahmet", "Yılmaz", "male", "English"),
    ("Thảo", "Nguyễn", "female", "English"), ("Ólafur", "Jónsson", "male", "English"),
)
STREETS = ("MG Road", "Church Street", "Brigade Road", "Residency Road", "Lavelle Road",
           "Richmond Road", "Lake View Road", "Palm Grove Layout")
#: How many patients ``more_patient_rows`` adds to the first ones (about 200 in all).
MORE_PATIENTS = 138


def email_part(name: str) -> str:
    """``"Ní Bhriain"`` → ``"nibhriain"``: a name as plain letters for a demo e-mail address."""
    return re.sub(r"[^a-z0-9]", "", search_key(name))


def more_patient_rows() -> list[dict]:
    """More patients, from across India and abroad, registered at both branches."""
    rows, met = [], {}
    for n in range(MORE_PATIENTS):
        if n % 4 == 3:
            visitor = (n // 4) % len(VISITORS)
            first, last, sex, language = VISITORS[visitor]
            # The partner named as emergency contact is the next visitor's first name.
            relative, contacts = last, (VISITORS[(visitor + 1) % len(VISITORS)][0],)
        else:
            people = COMMUNITY_PATTERN[n % len(COMMUNITY_PATTERN)]
            sex = "female" if n % 8 in (0, 2, 5) else "male"
            names = people.women if sex == "female" else people.men
            k = met[id(names)] = met.get(id(names), -1) + 1
            first = names[k % len(names)]
            last = relative = people.surnames[(k * 7 + k // len(names) + 2) % len(people.surnames)]
            language = people.languages[n % len(people.languages)]
            contacts = people.men if sex == "female" else people.women
        mobile = f"97401{n:05d}"
        # Phones arrive the way people say them; the patients service stores them in E.164.
        phone = (f"+91{mobile}", f"0{mobile[:5]} {mobile[5:]}", f"{mobile[:5]}-{mobile[5:]}")[n % 3]
        rows.append(
            {
                "first_name": first,
                "last_name": last,
                "date_of_birth": date(1938, 3, 1) + timedelta(days=(n * 2711 + 97) % 31000),
                "sex": sex,
                "phone": None if n % 29 == 11 else phone,
                "email": f"{email_part(first)}.{email_part(last)}{n}@example.org" if n % 3 != 1 else None,
                "address": f"{3 + n % 90} {STREETS[n % len(STREETS)]}\nSpringfield 5600{n % 90:02d}",
                "emergency_contact_name": f"{contacts[n % len(contacts)]} {relative}" if n % 8 in (0, 3) else None,
                "emergency_contact_phone": f"+91701901{n:04d}" if n % 8 in (0, 3) else None,
                "preferred_language": language,
                "branch": "LS" if n % 9 in (0, 2, 5, 7) else "DT",
                "consent_sms": n % 3 != 2,
                "consent_email": n % 3 == 0,
                "consent_whatsapp": n % 2 == 1,
                "consent_marketing": n % 11 == 0,
            }
        )
    # Registered twice: the same Zoë typed without the diaeresis, a new mobile number.
    rows.append({**rows[3], "first_name": "Zoe", "phone": "+919740199999", "email": None})
    return rows


def seed_patients(branches: dict[str, Branch]) -> int:
    """Register the demo patients not there yet (found again by name, birth date and phone)."""
    added = 0
    for row in demo_patient_rows():
        data = {key: value for key, value in row.items() if key != "branch"}
        patient = Patient(**data, registered_branch=branches[row["branch"]])
        digits = (
            phone_digits(normalise_phone(patient.phone, patient.registered_branch.country))
            if patient.phone
            else None
        )
        existing = db.session.scalar(
            select(Patient).where(
                Patient.first_name == patient.first_name,
                Patient.last_name == patient.last_name,
                Patient.date_of_birth == patient.date_of_birth,
                Patient.phone_digits == digits if digits else Patient.phone_digits.is_(None),
            )
        )
        if existing is not None:
            continue
        register_patient(patient, "in_person")
        added += 1
        if patient.id % 5 == 0:
            # A change of mind later, by phone: consent history with two entries.
            patient.consent_sms = not patient.consent_sms
            update_patient(patient, "phone")
        if patient.id % 7 == 0:
            db.session.add(
                PatientClinical(
                    patient_id=patient.id,
                    allergies="Penicillin" if patient.id % 2 else "None known",
                    chronic_conditions="Type 2 diabetes" if patient.id % 3 == 0 else None,
                )
            )
    db.session.flush()
    return added


def seed_demo(password: str | None = None) -> tuple[list[str], str]:
    """Create or refresh the demo clinic; return the usernames and their shared password.

    Branches, users, about 200 patients, the service and lab catalogues, doctors' rosters and
    (on the first run) a month of appointments around today with their consultations,
    prescriptions and lab orders (``app.demo_clinical``), and about 150 leads of the pipeline
    with their calls, messages and follow-ups (``app.demo_leads``).

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
    seed_patients(branches)
    sm = current_app.appbuilder.sm
    users = {name: sm.find_user(username=name) for name in usernames}
    seed_clinical(users, branches)
    seed_leads(users, branches)
    db.session.commit()
    return usernames, password
