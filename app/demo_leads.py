"""Demo data for the lead pipeline: about 150 enquiries over the last 90 days at both branches.

``seed_leads`` is called by ``app.demo.seed_demo`` and adds the pipeline once, when there is no
lead yet: a second run adds nothing. Every lead has a believable history: its stage changes in
time order (a lost one with its reason), the calls, texts, e-mails, WhatsApp messages and desk
conversations that moved it on, follow-up tasks (done, overdue, due today for the demo
receptionists, coming up), and its consents with a few marketing withdrawals.

Rows are written directly with the models, normalised the way the leads service does it
(folded name, phone digits, lower-case e-mail); phones are Indian mobiles in E.164. A converted
lead is linked to an existing demo patient (whose details it carries) with its conversion time;
no appointment is made for it. Drawn from a generator seeded with the day, so the same day
gives the same pipeline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from app.extensions import db
from app.models.base import utcnow
from app.models.leads import (
    HEARD_ABOUT,
    Communication,
    FollowUp,
    Lead,
    LeadConsentChange,
    LeadStageChange,
)
from app.models.org import Branch
from app.models.patients import Patient
from app.models.scheduling import Service
from app.services.patients import phone_digits, search_key

#: How many leads, and over how many days before today they arrived.
DEMO_LEADS = 150
DAYS_BACK = 89
#: Who answers each branch's enquiries.
RECEPTION = {"DT": "reception", "LS": "reception2"}
#: The way to a patient; lost leads leave it from one of the first four.
PATH = ("new", "contacted", "qualified", "booked", "converted")
#: Where leads end up (weights), and the sources in the proportions enquiries arrive.
OUTCOMES = {"new": 6, "contacted": 10, "qualified": 9, "booked": 11, "converted": 36, "lost": 28}
SOURCES = ("web_form", "phone", "web_form", "referral", "phone", "walk_in", "web_form",
           "campaign", "phone", "other")
#: Why leads are lost, by the stage they left from.
LOST_REASONS = {
    "new": ("not_reachable", "not_reachable", "duplicate", "out_of_area"),
    "contacted": ("not_reachable", "not_interested", "timing", "out_of_area", "other"),
    "qualified": ("price", "price", "chose_another_clinic", "timing", "not_interested"),
    "booked": ("timing", "chose_another_clinic", "other"),
}
LOST_NOTES = {
    "not_reachable": "Three attempts, no answer.",
    "not_interested": "Only wanted to know the fees.",
    "chose_another_clinic": "Booked closer to the office.",
    "price": "Found the treatment plan too expensive.",
    "timing": "Travelling for a month; will call again.",
    "out_of_area": "Moved to Mysuru.",
    "duplicate": "Same request sent twice.",
    "other": "Insurance did not cover the visit.",
}
#: How a consent was given, by the lead's source (the patients' consent vocabulary).
OBTAINED = {"web_form": "web_form", "phone": "phone", "walk_in": "in_person",
            "referral": "phone", "campaign": "in_person", "other": "phone"}
FIRST_NAMES = ("Aditi", "Rahul", "Sneha", "Vivek", "Lakshmi", "Arjun", "Farah", "Naveen",
               "Kavya", "Tanvir", "Meera", "Joseph", "Harpreet", "Sandeep", "Deepa", "Imran",
               "Ritika", "Gautam", "Shruti", "Manoj", "Anita", "Pradeep", "Zainab", "Kiran")
LAST_NAMES = ("Kulkarni", "Bhat", "Reddy", "Shetty", "Ansari", "Fernandes", "Malhotra", "Gowda",
              "Iyer", "Dutta", "Thomas", "Saxena", "Hegde", "Sandhu", "Pai", "Chowdhury")
REASONS = {
    "DT": ("Fever for three days", "Yearly check-up for my father", "Travel vaccinations",
           "Back pain after a fall", "Blood pressure review", "Sugar levels are high"),
    "LS": ("Toothache on the left side", "Cleaning and check-up", "Bleeding gums",
           "Braces consultation for my daughter", "A filling came out", "Wisdom tooth pain"),
}
SERVICES = {
    "DT": ("General consultation", "Health check-up", "Vaccination", "ECG", "Follow-up"),
    "LS": ("Dental check-up", "Scaling and polishing", "Tooth filling", "Root canal",
           "Extraction"),
}
PREFERRED_TIMES = ("Mornings next week", "After 5 pm on weekdays", "Saturday morning",
                   "Any time this week", "Lunch hour, 1 to 2 pm")
CAMPAIGNS = (("google", "cpc", "dental-checkup-nov"), ("facebook", "social", "family-health-month"),
             ("instagram", "social", "smile-week"), ("newsletter", "email", "winter-vaccines"))
#: When open follow-ups fall, by turn: before today, today, today, after today.
FOLLOW_UP_TURNS = ("overdue", "today", "today", "later")
TODAY_TIMES = (time(10, 0), time(12, 30), time(16, 0), time(18, 30))


@dataclass
class Story:
    """One lead being written: the lead, its stage times and the rows that go with it."""

    lead: Lead
    branch: str
    staff: User
    times: dict[str, datetime] = field(default_factory=dict)
    rows: list = field(default_factory=list)


class DemoPipeline:
    """Builds the demo leads and everything that happened to them, up to ``now``."""

    def __init__(self, users: dict[str, User], branches: dict[str, Branch], now: datetime) -> None:
        self.rng = random.Random(f"leads-{now.date().isoformat()}")
        self.now = now
        self.users = users
        self.branches = branches
        self.services = {
            code: [s for s in db.session.scalars(select(Service).where(Service.name.in_(names)))]
            for code, names in SERVICES.items()
        }
        self.patients = {
            code: list(
                db.session.scalars(
                    select(Patient)
                    .where(Patient.registered_branch_id == branch.id)
                    .where(Patient.merged_into_id.is_(None))
                    .order_by(Patient.id)
                )
            )
            for code, branch in branches.items()
        }
        self.rng.shuffle(self.patients["DT"])
        self.rng.shuffle(self.patients["LS"])
        self.turns = {code: 0 for code in branches}
        self.rows: list = []

    # -- the lead and its way through the pipeline ---------------------------------------------

    def plan(self, n: int) -> tuple[str, str, str, float]:
        """(branch, source, final stage, age in days) of the n-th lead."""
        source = SOURCES[n % len(SOURCES)]
        if n < 12:  # every stage at both branches, whatever the draw
            return ("DT", "LS")[n // 6], source, ("new", "contacted", "qualified", "booked",
                                                   "converted", "lost")[n % 6], 10 + n * 3.1
        branch = "LS" if n % 3 == 1 else "DT"
        age = self.rng.uniform(0.05, DAYS_BACK)
        outcome = self.rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
        if age < 2 and outcome != "lost":
            outcome = self.rng.choice(("new", "new", "contacted"))
        elif age < 6 and outcome == "converted":
            outcome = "booked"
        return branch, source, outcome, age

    def person(self, n: int, branch: str, outcome: str) -> tuple[dict, Patient | None]:
        """Name and contact details: a demo patient's for a converted lead, else made up."""
        if outcome == "converted" and self.patients[branch]:
            patient = self.patients[branch].pop()
            return {"first_name": patient.first_name, "last_name": patient.last_name,
                    "phone": patient.phone, "email": patient.email}, patient
        first = FIRST_NAMES[(n * 7) % len(FIRST_NAMES)]
        last = LAST_NAMES[(n * 5 + n // len(FIRST_NAMES)) % len(LAST_NAMES)]
        phone = f"+91{(98860, 99001, 70220, 81470)[n % 4]}{n:05d}" if n % 9 != 4 else None
        email = f"{search_key(first)}.{search_key(last).replace(' ', '')}{n}@example.org"
        return {"first_name": first, "last_name": last, "phone": phone,
                "email": email if phone is None or n % 5 in (0, 2, 3) else None}, None

    def created_at(self, age_days: float, source: str, branch: str) -> datetime:
        """A believable arrival time: web requests come at any hour, others in clinic hours."""
        zone = ZoneInfo(self.branches[branch].time_zone)
        day = (self.now - timedelta(days=age_days)).astimezone(zone)
        hours = (7, 23) if source == "web_form" else (9, 19)
        at = day.replace(hour=self.rng.randrange(*hours), minute=self.rng.randrange(60))
        return min(at.astimezone(timezone.utc), self.now - timedelta(minutes=20))

    def stage_times(self, created: datetime, path: list[str]) -> dict[str, datetime]:
        """When the lead entered each stage of ``path`` after "new", in order, before now."""
        gaps = {"contacted": (0.2, 30), "qualified": (1, 72), "booked": (0.5, 96),
                "converted": (0.2, 48), "lost": (24, 240)}
        hours = [self.rng.uniform(*gaps[stage]) for stage in path[1:]]
        room = (self.now - created).total_seconds() / 3600 - 0.1
        scale = min(1.0, room * 0.95 / sum(hours)) if hours else 1.0
        times, at = {"new": created}, created
        for stage, gap in zip(path[1:], hours):
            at = at + timedelta(hours=gap * scale)
            times[stage] = at
        return times

    def path_to(self, outcome: str, source: str) -> list[str]:
        if outcome == "lost":
            left = self.rng.choices(PATH[:4], weights=(3, 4, 3, 1))[0]
            return [*PATH[: PATH.index(left) + 1], "lost"]
        path = list(PATH[: PATH.index(outcome) + 1])
        # Walk-ins and referrals often book at once, without the qualifying call.
        quick = source in ("walk_in", "referral") and outcome in ("booked", "converted")
        if quick and self.rng.random() < 0.6:
            path = [stage for stage in path if stage not in ("contacted", "qualified")]
        return path

    def lead(self, n: int) -> Story:
        branch, source, outcome, age = self.plan(n)
        details, patient = self.person(n, branch, outcome)
        if outcome == "converted" and patient is None:
            outcome = "booked"
        path = self.path_to(outcome, source)
        created = self.created_at(age, source, branch)
        times = self.stage_times(created, path)
        reception = self.users[RECEPTION[branch]]
        lead = Lead(
            **details,
            branch_id=self.branches[branch].id,
            source=source,
            stage=path[-1],
            stage_changed_at=times[path[-1]],
            requested_service=(
                self.rng.choice(self.services[branch]) if self.services[branch] and n % 4 else None
            ),
            reason=self.rng.choice(REASONS[branch]),
            preferred_times=self.rng.choice(PREFERRED_TIMES) if n % 3 else None,
            heard_about=self.rng.choice(HEARD_ABOUT) if source == "web_form" else None,
            owner_id=None if (source == "web_form" and path == ["new"]) else reception.id,
            consent_contact=True,
            consent_reminders=n % 5 not in (1, 4),
            consent_marketing=n % 10 in (0, 3, 7),
            created_at=created,
            updated_at=times[path[-1]],
        )
        lead.name_search = search_key(f"{lead.first_name} {lead.last_name or ''}")
        lead.phone_digits = phone_digits(lead.phone)
        lead.email_search = lead.email.lower() if lead.email else None
        if source == "web_form" and n % 2 == 0:
            lead.utm_source, lead.utm_medium, lead.utm_campaign = CAMPAIGNS[n % len(CAMPAIGNS)]
        if source == "campaign":
            lead.utm_campaign = "free-dental-camp" if branch == "LS" else "diabetes-screening-camp"
        if "lost" in path:
            lead.lost_reason = self.rng.choice(LOST_REASONS[path[-2]])
        if "booked" in path:
            lead.booked_at = times["booked"]
        if patient is not None:
            lead.patient_id = patient.id
            lead.converted_at = times["converted"]
        story = Story(lead, branch, reception, times)
        self.history(story, path, reception)
        self.consents(story, n, reception)
        self.conversations(story)
        self.follow_ups(story, reception)
        return story

    def history(self, story: Story, path: list[str], reception: User) -> None:
        web = story.lead.source == "web_form"
        for before, stage in zip([None, *path], path):
            note = LOST_NOTES[story.lead.lost_reason] if stage == "lost" else None
            story.rows.append(LeadStageChange(
                lead=story.lead, from_stage=before, to_stage=stage, note=note,
                changed_by_id=None if (web and stage == "new") else reception.id,
                changed_at=story.times[stage],
            ))

    def consents(self, story: Story, n: int, reception: User) -> None:
        lead, created = story.lead, story.times["new"]
        obtained = OBTAINED[lead.source]
        by = None if obtained == "web_form" else reception.id
        for kind in ("contact", "reminders", "marketing"):
            if getattr(lead, f"consent_{kind}"):
                story.rows.append(LeadConsentChange(
                    lead=lead, kind=kind, granted=True, obtained=obtained, changed_by_id=by,
                    changed_at=created,
                ))
        if lead.consent_marketing and n % 20 == 0:
            # Asked to hear no more offers: recorded with when and how.
            lead.consent_marketing = False
            story.rows.append(LeadConsentChange(
                lead=lead, kind="marketing", granted=False, obtained="phone",
                changed_by_id=reception.id, changed_at=created + (self.now - created) * 0.6,
            ))

    # -- what was said and what is to do --------------------------------------------------------

    def talk(self, story: Story, at: datetime, channel: str, direction: str, outcome: str,
             summary: str) -> None:
        """A call or message with the lead, by the branch's receptionist."""
        story.rows.append(Communication(
            lead=story.lead, branch_id=story.lead.branch_id, channel=channel,
            direction=direction, outcome=outcome, summary=summary, occurred_at=at,
            staff_id=story.staff.id, created_at=at, updated_at=at,
        ))

    def conversations(self, story: Story) -> None:
        lead, times, rng = story.lead, story.times, self.rng
        created = times["new"]
        if lead.source == "phone":
            self.talk(story, created, "call", "in", "reached", "Called to ask for an appointment.")
        elif lead.source == "walk_in":
            self.talk(story, created, "in_person", "in", "reached", "Asked at the front desk.")
        if "contacted" in times:
            at = times["contacted"]
            if rng.random() < 0.4:
                self.talk(story, created + (at - created) * 0.5, "call", "out",
                          rng.choice(("no_answer", "busy", "left_message")), "First call back.")
            if lead.email and rng.random() < 0.3:
                self.talk(story, at, "email", "out", "replied",
                          "Sent the available times; they replied.")
            elif rng.random() < 0.25:
                self.talk(story, at, "whatsapp", "out", "replied",
                          "Shared the clinic's location and hours.")
            else:
                self.talk(story, at, "call", "out", "reached", "Talked through the request.")
        if "qualified" in times:
            self.talk(story, times["qualified"], "call", "out", "reached",
                      "Explained the treatment and the fees.")
        if "booked" in times:
            channel = "whatsapp" if lead.consent_reminders and rng.random() < 0.5 else "sms"
            self.talk(story, times["booked"], channel, "out", "sent",
                      "Appointment confirmation sent.")
        if "lost" in times:
            at = times["lost"]
            if lead.lost_reason == "not_reachable":
                for k in (0.5, 0.75):
                    self.talk(story, created + (at - created) * k, "call", "out", "no_answer",
                              "No answer.")
                self.talk(story, at, "sms", "out", "sent", "Asked them to call us back.")
            elif lead.lost_reason == "out_of_area" and not lead.phone_digits:
                self.talk(story, at, "email", "out", "failed", "E-mail bounced.")
            else:
                self.talk(story, at, "call", "out", "reached", LOST_NOTES[lead.lost_reason])
        elif lead.stage == "new" and self.now - created > timedelta(days=1) and lead.phone:
            outcome = rng.choice(("no_answer", "wrong_number", "left_message"))
            self.talk(story, created + (self.now - created) * 0.5, "call", "out", outcome,
                      "Tried to call back.")

    def follow_ups(self, story: Story, reception: User) -> None:
        lead, times = story.lead, story.times
        if "contacted" in times and self.rng.random() < 0.5:
            due = times["new"] + (times["contacted"] - times["new"]) * 0.8
            story.rows.append(FollowUp(
                lead=lead, branch_id=lead.branch_id, due_at=due, assignee_id=reception.id,
                note="Call back about the request.", done_at=times["contacted"],
                done_by_id=reception.id, created_at=times["new"], updated_at=times["contacted"],
            ))
        if lead.stage not in ("new", "contacted", "qualified"):
            return
        zone = ZoneInfo(self.branches[story.branch].time_zone)
        today = self.now.astimezone(zone).date()
        turn = FOLLOW_UP_TURNS[self.turns[story.branch] % len(FOLLOW_UP_TURNS)]
        self.turns[story.branch] += 1
        if turn == "overdue":
            day, at = today - timedelta(days=self.rng.randint(1, 3)), time(10, 30)
        elif turn == "today":
            day, at = today, TODAY_TIMES[self.turns[story.branch] % len(TODAY_TIMES)]
        else:
            day, at = today + timedelta(days=self.rng.randint(1, 5)), time(11, 0)
        due = datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)
        if due <= times["new"]:
            due = times["new"] + timedelta(hours=2)
        automatic = lead.stage == "new" and lead.source == "web_form"
        note = {"new": "First call to the new request.", "contacted": "Send the fees and times.",
                "qualified": "Offer an appointment."}[lead.stage]
        story.rows.append(FollowUp(
            lead=lead, branch_id=lead.branch_id, due_at=due, assignee_id=reception.id,
            note=note, is_automatic=automatic, created_at=lead.stage_changed_at,
            updated_at=lead.stage_changed_at,
        ))
        lead.next_follow_up_at = due


def seed_leads(
    users: dict[str, User], branches: dict[str, Branch], now: datetime | None = None
) -> bool:
    """About 150 leads with their histories, once: returns False when leads exist already."""
    if db.session.scalar(select(Lead.id).limit(1)) is not None:
        return False
    pipeline = DemoPipeline(users, branches, (now or utcnow()).astimezone(timezone.utc))
    for n in range(DEMO_LEADS):
        story = pipeline.lead(n)
        db.session.add(story.lead)
        db.session.add_all(story.rows)
    db.session.flush()
    return True
