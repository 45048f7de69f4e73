"""The hash chain: sealed without a global write lock, verified link by link.

The verifier (``flask --app run clinic audit-verify``) must name the first broken link after each
kind of tampering done directly in the database — an edited entry, a deleted one, a forged one
inserted, two put in another order — and the sealer must link every committed entry exactly
once, also while many transactions commit at the same time (PostgreSQL) and when a transaction
commits after later entries were already sealed.
"""

from __future__ import annotations

import hashlib
import threading

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.org import Branch
from app.services.audit import acting_as, entry_row
from app.services.audit_chain import seal_pending, verify_chain
from tests.audit_support import PatientNote, install_patient_notes
from tests.conftest import Auth, config_for, csrf_token_from

TAMPERED_SEQ = 5
WRITERS, WRITES_EACH = 8, 25


@pytest.fixture
def fresh_app(databases):
    """An app on a database of its own, for a test that breaks the chain on purpose."""
    url = databases.copy_of_template()
    app = create_app(config_for(url))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


def verify(app):
    return app.test_cli_runner().invoke(args=["clinic", "audit-verify"])


def run_sql(app, *statements: tuple[str, dict]) -> None:
    with app.app_context(), db.engine.begin() as connection:
        for sql, params in statements:
            connection.execute(sa.text(sql), params)


def hash_at(app, seq: int) -> str:
    with app.app_context():
        return db.session.scalar(sa.select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))


def edit_an_entry(app):
    run_sql(app, ("UPDATE audit_entry SET actor = 'mallory' WHERE seq = :s", {"s": TAMPERED_SEQ}))


def delete_an_entry(app):
    run_sql(app, ("DELETE FROM audit_entry WHERE seq = :s", {"s": TAMPERED_SEQ}))


def insert_a_forged_entry(app):
    """Make room at seq 5 and put a forged entry there, linked to entry 4 as a real one would."""
    prev_hash = hash_at(app, TAMPERED_SEQ - 1)
    forged = hashlib.sha256(b"forged entry").hexdigest()
    run_sql(
        app,
        ("UPDATE audit_entry SET seq = -seq WHERE seq >= :s", {"s": TAMPERED_SEQ}),
        ("UPDATE audit_entry SET seq = 1 - seq WHERE seq < 0", {}),
        (
            "INSERT INTO audit_entry (occurred_at, kind, action, actor, details, seq, prev_hash,"
            " entry_hash) VALUES (:at, 'change', 'update', 'admin', '{}', :s, :prev, :hash)",
            {"at": utcnow(), "s": TAMPERED_SEQ, "prev": prev_hash, "hash": forged},
        ),
    )


def swap_two_entries(app):
    run_sql(
        app,
        ("UPDATE audit_entry SET seq = -1 WHERE seq = :s", {"s": TAMPERED_SEQ}),
        ("UPDATE audit_entry SET seq = :s WHERE seq = :n", {"s": TAMPERED_SEQ, "n": TAMPERED_SEQ + 1}),
        ("UPDATE audit_entry SET seq = :n WHERE seq = -1", {"n": TAMPERED_SEQ + 1}),
    )


TAMPERING = [
    ("edit", edit_an_entry, "its content does not match its hash"),
    ("delete", delete_an_entry, "the entry is missing"),
    ("insert", insert_a_forged_entry, "its content does not match its hash"),
    ("reorder", swap_two_entries, "it does not link to the entry before it"),
]
caught: set[str] = set()


@pytest.mark.parametrize("kind, tamper, reason", TAMPERING, ids=[t[0] for t in TAMPERING])
def test_the_verifier_names_the_first_broken_link(fresh_app, kind, tamper, reason):
    result = verify(fresh_app)
    assert result.exit_code == 0, result.output
    assert "Audit chain OK" in result.output
    tamper(fresh_app)
    result = verify(fresh_app)
    assert result.exit_code == 1
    assert f"BROKEN at seq {TAMPERED_SEQ}: {reason}" in result.output
    caught.add(kind)


def test_every_tamper_kind_was_caught(capsys):
    with capsys.disabled():
        print(f"\n[audit] verifier: {len(caught)}/{len(TAMPERING)} tamper kinds caught")
    assert caught == {kind for kind, _, _ in TAMPERING}


def test_the_verifier_catches_entries_cut_from_the_end(fresh_app):
    assert verify(fresh_app).exit_code == 0
    with fresh_app.app_context():
        last = db.session.scalar(sa.select(sa.func.max(AuditEntry.seq)))
    run_sql(fresh_app, ("DELETE FROM audit_entry WHERE seq >= :s", {"s": last - 1}))
    result = verify(fresh_app)
    assert result.exit_code == 1
    assert f"BROKEN at seq {last - 1}: entries up to seq {last} are missing" in result.output


def _insert_entry(connection, **fields) -> int:
    row = {**entry_row("change", "update", model="Branch", details='{"changes": {}}'), **fields}
    return connection.execute(
        sa.insert(AuditEntry.__table__).returning(AuditEntry.__table__.c.id), row
    ).scalar_one()


def _seq_of(app, *ids: int) -> list[int | None]:
    with app.app_context():
        seqs = dict(db.session.execute(
            sa.select(AuditEntry.id, AuditEntry.seq).where(AuditEntry.id.in_(ids))
        ).all())
    return [seqs[i] for i in ids]


def test_an_entry_committed_late_is_sealed_once_after_the_others(fresh_app):
    with fresh_app.app_context():
        seal_pending()
        engine = db.engine
        if engine.dialect.name == "postgresql":
            # A long transaction takes an id, a short one takes the next and commits first.
            with engine.connect() as slow, engine.connect() as fast:
                slow_tx = slow.begin()
                late = _insert_entry(slow, actor="test:slow")
                with fast.begin():
                    early = _insert_entry(fast, actor="test:fast")
                assert late < early
                assert seal_pending() == 1  # only the committed entry
                slow_tx.commit()
        else:
            # SQLite has one writer at a time: give the late entry a smaller id by hand.
            with engine.begin() as connection:
                top = connection.scalar(sa.select(sa.func.max(AuditEntry.id)))
                early = _insert_entry(connection, id=top + 100, actor="test:fast")
            assert seal_pending() == 1
            with engine.begin() as connection:
                late = _insert_entry(connection, id=top + 50, actor="test:slow")
        assert seal_pending() == 1
        assert seal_pending() == 0
    early_seq, late_seq = _seq_of(fresh_app, early, late)
    assert late_seq == early_seq + 1  # chain order is commit order, not id order
    with fresh_app.app_context():
        report = verify_chain()
    assert report.ok, report


def test_requests_seal_their_entries_when_jobs_run_inline(make_app):
    app = make_app(JOBS_INLINE=True)
    client = app.test_client()
    Auth(client).login("owner")
    with app.app_context():
        downtown = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        form = {"name": downtown.name, "code": "DT", "country": downtown.country,
                "time_zone": downtown.time_zone, "currency": downtown.currency,
                "fy_start_month": str(downtown.fy_start_month), "is_active": "y",
                "letterhead_text": "Sealed at once"}
        path = f"/settings/branches/edit/{downtown.id}"
    page = client.get(path).get_data(as_text=True)
    response = client.post(path, data={**form, "csrf_token": csrf_token_from(page)})
    assert response.status_code == 302
    with app.app_context():
        entry = db.session.scalar(
            sa.select(AuditEntry).where(AuditEntry.model == "Branch")
            .order_by(AuditEntry.id.desc()).limit(1)
        )
        assert "Sealed at once" in entry.details
        assert entry.seq is not None and entry.entry_hash


def test_concurrent_writers_and_sealers_lose_nothing(fresh_app, capsys):
    if fresh_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: concurrency is proven on PostgreSQL")
    install_patient_notes(fresh_app)
    with fresh_app.app_context():
        downtown = db.session.scalar(sa.select(Branch.id).where(Branch.code == "DT"))
    errors: list[BaseException] = []
    sealed_while_writing: list[int] = []
    writing = threading.Event()
    writing.set()
    start = threading.Barrier(WRITERS + 1)

    def writer(number: int) -> None:
        try:
            with fresh_app.app_context(), acting_as(f"test:writer-{number}"):
                start.wait()
                for i in range(WRITES_EACH):
                    # Five patients shared by all writers: their keys are created under contention.
                    db.session.add(PatientNote(patient_id=9000 + (number + i) % 5,
                                               title=f"w{number}-{i}", branch_id=downtown))
                    db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            with fresh_app.app_context():
                db.session.remove()

    def sealer() -> None:
        try:
            with fresh_app.app_context():
                start.wait()
                while writing.is_set():
                    sealed_while_writing.append(seal_pending())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    sealer_thread = threading.Thread(target=sealer)
    for thread in (*threads, sealer_thread):
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writing.clear()
    sealer_thread.join(timeout=120)
    assert not errors, errors
    with fresh_app.app_context():
        seal_pending()
        rows = db.session.execute(
            sa.select(AuditEntry.seq).where(
                AuditEntry.model == "PatientNote", AuditEntry.actor.like("test:writer-%")
            )
        ).scalars().all()
        report = verify_chain()
    sealed = [seq for seq in rows if seq is not None]
    assert len(rows) == WRITERS * WRITES_EACH
    assert sum(sealed_while_writing) > 0  # the sealer really ran among the writers
    assert len(set(sealed)) == len(rows)
    assert report.ok, report
    with capsys.disabled():
        print(
            f"\n[audit] {WRITERS * WRITES_EACH} concurrent writes, {len(set(sealed))} entries "
            f"sealed, chain {'OK' if report.ok else 'BROKEN'}"
        )
