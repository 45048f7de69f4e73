"""The lab: reference ranges and flags, the order's life, second-person verification, amendments,
the catalogue's checks, the printed report, access logging, roles and branches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models.audit import AuditEntry
from app.models.lab import LabOrder, LabResult, LabResultAmendment, LabTest
from app.models.org import Branch
from app.models.patients import Patient
from app.security import policy
from app.services.lab import (
    LabAmendmentError,
    LabCatalogueError,
    LabOrderError,
    LabResultValuesError,
    LabStatusError,
    LabVerificationError,
    ResultEntry,
    add_reference_range,
    amend_result,
    cancel_order,
    collect_sample,
    create_order,
    enter_results,
    flag_for,
    select_range,
    start_processing,
    verify_results,
)
from app.services.patients import register_patient
from tests.conftest import PASSWORD, bearer_headers, csrf_token_from, login_as

# The rules of the clinical core hold on SQLite too (the subset CI runs there).
pytestmark = pytest.mark.sqlite_subset

PAYLOAD = "<script>alert('lab')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;lab&#39;)&lt;/script&gt;"


def _years_ago(years: int) -> date:
    today = date.today()
    return today.replace(year=today.year - years, day=min(today.day, 28))


@pytest.fixture(scope="module")
def lab(app):
    """Tests with ranges, three patients, and a second lab technician at Downtown."""
    with app.app_context():
        sm = app.appbuilder.sm
        downtown = db.session.scalar(sa.select(Branch).where(Branch.code == "DT"))
        lakeside = db.session.scalar(sa.select(Branch).where(Branch.code == "LS"))
        second = sm.add_user(
            "labtech2", "Meera", "Iyer", "labtech2@example.org",
            sm.find_role(policy.LAB_TECHNICIAN), password=PASSWORD, commit=False,
        )
        second.branches = [downtown]
        hb = LabTest(code="HBX", name="Haemoglobin X", sample_type="Blood (EDTA)", unit="g/dL",
                     turnaround_hours=4)
        glu = LabTest(code="GLUX", name="Fasting glucose X", sample_type="Plasma", unit="mg/dL",
                      turnaround_hours=4)
        group = LabTest(code="ABOX", name="Blood group X", sample_type="Blood", turnaround_hours=24)
        retired = LabTest(code="OLDX", name="Retired test X", unit="U/L", is_active=False)
        db.session.add_all([hb, glu, group, retired])
        db.session.flush()
        add_reference_range(hb, sex="any", age_min_years=0, age_max_years=18, low=Decimal("11"), high=Decimal("14.5"))
        add_reference_range(hb, sex="any", age_min_years=18, low=Decimal("12"), high=Decimal("17"))
        add_reference_range(hb, sex="female", age_min_years=18, low=Decimal("12"), high=Decimal("15.5"))
        add_reference_range(hb, sex="male", age_min_years=18, low=Decimal("13.5"), high=Decimal("17.5"))
        add_reference_range(glu, sex="any", low=Decimal("70"), high=Decimal("100"))
        patients = {}
        for key, first, sex, born, branch in (
            ("asha", "Asha", "female", _years_ago(40), downtown),
            ("ravi", "Ravi", "male", _years_ago(35), downtown),
            ("kid", "Kiran", "female", _years_ago(8), lakeside),
        ):
            patient = Patient(first_name=first, last_name="Labtest", sex=sex, date_of_birth=born,
                              registered_branch_id=branch.id)
            register_patient(patient, "in_person")
            patients[key] = patient.id
        db.session.commit()
        return {
            "hb": hb.id, "glu": glu.id, "group": group.id, "retired": retired.id,
            "dt": downtown.id, "ls": lakeside.id, **patients,
        }


def user(app, username):
    return app.appbuilder.sm.find_user(username=username)


def new_order(app, lab, patient="asha", tests=("hb", "glu", "group"), branch="dt", by="doctor"):
    with app.app_context():
        order = create_order(
            tests=[db.session.get(LabTest, lab[t]) for t in tests],
            patient=db.session.get(Patient, lab[patient]),
            branch=db.session.get(Branch, lab[branch]),
            priority="urgent", clinical_notes="Tired for weeks", by=user(app, by),
        )
        db.session.commit()
        return order.id


def result_ids(app, order_id) -> dict[str, int]:
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        return {result.test.code: result.id for result in order.results}


def post(client, path, data, page=None):
    token = csrf_token_from(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


# -- ranges and flags ----------------------------------------------------------------------------


def test_the_sex_specific_range_wins_and_the_age_band_follows_the_patient(app, lab):
    with app.app_context():
        hb = db.session.get(LabTest, lab["hb"])
        asha, ravi, kid = (db.session.get(Patient, lab[k]) for k in ("asha", "ravi", "kid"))
        assert (select_range(hb, asha).low, select_range(hb, asha).high) == (12, Decimal("15.5"))
        assert select_range(hb, ravi).low == Decimal("13.5")
        assert (select_range(hb, kid).low, select_range(hb, kid).high) == (11, Decimal("14.5"))
        other = Patient(first_name="X", last_name="Y", sex="other", date_of_birth=_years_ago(30))
        assert select_range(hb, other).high == 17  # the "any" adult range
        unknown_age = Patient(first_name="X", last_name="Y", sex="female")
        assert select_range(hb, unknown_age) is None  # every hb range has an age band
        assert select_range(db.session.get(LabTest, lab["glu"]), unknown_age).high == 100
        assert select_range(db.session.get(LabTest, lab["group"]), asha) is None


def test_flags_low_high_normal_and_none_without_a_range():
    low, high = Decimal("12"), Decimal("15.5")
    assert flag_for(Decimal("11.9"), low, high) == "low"
    assert flag_for(Decimal("15.6"), low, high) == "high"
    assert flag_for(Decimal("12"), low, high) == "normal"
    assert flag_for(Decimal("15.5"), low, high) == "normal"
    assert flag_for(Decimal("300"), None, Decimal("200")) == "high"
    assert flag_for(Decimal("5"), None, None) is None


# -- the order's life (service) ------------------------------------------------------------------


def test_the_status_machine_refuses_moves_out_of_order(app, lab):
    order_id = new_order(app, lab)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        assert order.status == "ordered" and order.ordered_by.username == "doctor"
        assert {r.patient_id for r in order.results} == {lab["asha"]}
        with pytest.raises(LabStatusError, match="cannot become"):
            start_processing(order)
        with pytest.raises(LabStatusError):
            enter_results(order, {})
        with pytest.raises(LabStatusError, match="Say why"):
            cancel_order(order, "  ")
        collect_sample(order, by=user(app, "labtech"))
        assert order.collected_by_id == user(app, "labtech").id and order.collected_at
        with pytest.raises(LabStatusError):
            collect_sample(order)
        start_processing(order)
        entries = {r.id: ResultEntry("13") for r in order.results}
        enter_results(order, entries, by=user(app, "labtech"))
        assert order.status == "resulted"
        with pytest.raises(LabStatusError, match="can no longer be cancelled"):
            cancel_order(order, "Sample haemolysed")
        db.session.rollback()


def test_an_order_needs_active_tests(app, lab):
    with app.app_context():
        patient = db.session.get(Patient, lab["asha"])
        branch = db.session.get(Branch, lab["dt"])
        with pytest.raises(LabOrderError, match="at least one test"):
            create_order(tests=[], patient=patient, branch=branch)
        with pytest.raises(LabOrderError, match="can no longer be ordered"):
            create_order(tests=[db.session.get(LabTest, lab["retired"])], patient=patient, branch=branch)
        db.session.rollback()


def test_results_copy_unit_and_range_and_text_results_flag_only_when_marked(app, lab):
    order_id = new_order(app, lab, patient="ravi")
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        collect_sample(order)
        ids = {r.test.code: r.id for r in order.results}
        entries = {ids["HBX"]: ResultEntry("12,9"), ids["GLUX"]: ResultEntry("88"),
                   ids["ABOX"]: ResultEntry("B positive")}
        enter_results(order, entries, by=user(app, "labtech"))
        by_code = {r.test.code: r for r in order.results}
        hb = by_code["HBX"]
        assert (hb.value_numeric, hb.unit, hb.reference_low, hb.reference_high, hb.flag) == (
            Decimal("12.9"), "g/dL", Decimal("13.5"), Decimal("17.5"), "low")
        assert by_code["GLUX"].flag == "normal"
        assert (by_code["ABOX"].value_text, by_code["ABOX"].flag) == ("B positive", None)
        entries[ids["ABOX"]] = ResultEntry("Rare variant", abnormal=True)
        enter_results(order, entries, by=user(app, "labtech"))
        assert by_code["ABOX"].flag == "abnormal"
        db.session.rollback()


def test_unreadable_or_missing_values_are_refused_with_one_message_per_test(app, lab):
    order_id = new_order(app, lab)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        collect_sample(order)
        ids = {r.test.code: r.id for r in order.results}
        with pytest.raises(LabResultValuesError) as refused:
            enter_results(order, {ids["HBX"]: ResultEntry("twelve"), ids["ABOX"]: ResultEntry("O+")})
        assert refused.value.errors == {
            ids["HBX"]: "Haemoglobin X: enter a number, e.g. 5.4.",
            ids["GLUX"]: "Fasting glucose X: enter the result.",
        }
        db.session.rollback()


def test_verification_needs_a_second_person_and_the_database_agrees(app, lab):
    order_id = new_order(app, lab)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        collect_sample(order)
        enter_results(order, {r.id: ResultEntry("14") for r in order.results}, by=user(app, "labtech"))
        with pytest.raises(LabVerificationError, match="someone other than"):
            verify_results(order, by=user(app, "labtech"))
        db.session.commit()
        order.verified_by_id = order.resulted_by_id
        order.status = "verified"
        with pytest.raises(sa.exc.IntegrityError):
            db.session.flush()
        db.session.rollback()
        order = db.session.get(LabOrder, order_id)
        verify_results(order, by=user(app, "labtech2"))
        assert order.status == "verified" and order.verified_by.username == "labtech2"
        db.session.commit()


def test_amendments_need_a_reason_keep_the_old_value_and_re_flag(app, lab):
    order_id = new_order(app, lab)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        collect_sample(order)
        enter_results(order, {r.id: ResultEntry("14") for r in order.results}, by=user(app, "labtech"))
        hb = next(r for r in order.results if r.test.code == "HBX")
        with pytest.raises(LabAmendmentError, match="Only verified"):
            amend_result(hb, ResultEntry("16"), "Typo")
        verify_results(order, by=user(app, "labtech2"))
        with pytest.raises(LabStatusError):
            enter_results(order, {r.id: ResultEntry("1") for r in order.results})
        with pytest.raises(LabAmendmentError, match="Say why"):
            amend_result(hb, ResultEntry("16"), " ")
        with pytest.raises(LabAmendmentError, match="changes nothing"):
            amend_result(hb, ResultEntry("14.0"), "Re-checked")
        amendment = amend_result(hb, ResultEntry("16"), "Transcription error", by=user(app, "labtech"))
        assert (amendment.old_value, amendment.new_value, amendment.reason) == ("14", "16", "Transcription error")
        assert (hb.flag, amendment.patient_id, amendment.amended_by.username) == ("high", lab["asha"], "labtech")
        db.session.commit()


def test_reference_ranges_are_checked(app, lab):
    with app.app_context():
        glu = db.session.get(LabTest, lab["glu"])
        cases = [
            (dict(low=Decimal("5"), high=Decimal("4")), "must not be below"),
            (dict(age_min_years=40, age_max_years=20, low=Decimal("1")), "must end after it starts"),
            (dict(sex="any", age_min_years=10, low=Decimal("1")), "overlaps"),
            (dict(sex="female"), "low or a high limit"),
        ]
        for arguments, message in cases:
            with pytest.raises(LabCatalogueError, match=message):
                add_reference_range(glu, **arguments)
        db.session.rollback()


# -- screens -------------------------------------------------------------------------------------


def test_a_doctor_orders_and_the_lab_works_the_order_through(app, lab):
    doctor = login_as(app, "doctor")
    page = doctor.get(f"/lab-orders/add?patient={lab['asha']}").get_data(as_text=True)
    assert "Asha Labtest" in page and "Retired test X" not in page
    response = doctor.post("/lab-orders/add", data={
        "csrf_token": csrf_token_from(page), "patient": lab["asha"], "branch": lab["dt"],
        "tests": [lab["hb"], lab["group"]], "priority": "stat", "clinical_notes": "Pale",
    })
    assert response.status_code == 302, response.get_data(as_text=True)
    order_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        assert (order.priority, order.branch_id, order.ordered_by.username) == ("stat", lab["dt"], "doctor")

    tech = login_as(app, "labtech")
    show = f"/lab-orders/show/{order_id}"
    assert post(tech, f"/lab-orders/{order_id}/collect", {}, show).status_code == 302
    ids = result_ids(app, order_id)
    enter = f"/lab-results/enter/{order_id}"
    bad = post(tech, enter, {f"value-{ids['HBX']}": "1O.2", f"value-{ids['ABOX']}": "A negative"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 200 and "Haemoglobin X: enter a number, e.g. 5.4." in body
    assert 'value="A negative"' in body and 'value="1O.2"' in body
    good = post(tech, enter, {f"value-{ids['HBX']}": "10.2", f"value-{ids['ABOX']}": "A negative",
                              f"comment-{ids['HBX']}": "Repeat in 4 weeks"})
    assert good.status_code == 302
    page = tech.get(show).get_data(as_text=True)
    assert "cd-lab-row--flagged" in page and "Low" in page and "12–15.5" in page
    assert "another person verifies them" in page

    refused = post(tech, f"/lab-results/verify/{order_id}", {}, show)
    assert "someone other than the person who entered them" in tech.get(show).get_data(as_text=True)
    assert refused.status_code == 302
    second = login_as(app, "labtech2")
    post(second, f"/lab-results/verify/{order_id}", {}, show)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        assert (order.status, order.verified_by.username) == ("verified", "labtech2")

    again = tech.get(enter, follow_redirects=True).get_data(as_text=True)
    assert "cannot be entered for an order that is “Verified”" in again
    amend = f"/lab-results/amend/{order_id}?result={ids['HBX']}"
    no_reason = post(tech, amend, {"value": "12.2", "reason": ""})
    assert "Say why the result is amended." in no_reason.get_data(as_text=True)
    assert post(tech, amend, {"value": "12.2", "reason": "Wrong sample tube read"}).status_code == 302
    page = tech.get(show).get_data(as_text=True)
    assert "Wrong sample tube read" in page and "Amended" in page
    with app.app_context():
        result = db.session.get(LabResult, ids["HBX"])
        assert (result.value_numeric, result.flag) == (Decimal("12.2"), "normal")
        assert db.session.scalar(sa.select(sa.func.count(LabResultAmendment.id)).where(
            LabResultAmendment.result_id == result.id)) == 1


def test_cancel_needs_a_reason_on_screen(app, lab):
    order_id = new_order(app, lab)
    doctor = login_as(app, "doctor")
    path = f"/lab-orders/{order_id}/cancel"
    assert "Say why." in post(doctor, path, {"reason": ""}).get_data(as_text=True)
    assert post(doctor, path, {"reason": "Ordered twice"}).status_code == 302
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        assert (order.status, order.cancel_reason) == ("cancelled", "Ordered twice")


def test_the_catalogue_explains_what_to_fix(app, lab):
    owner = login_as(app, "owner")
    bad = post(owner, "/lab-tests/add", {"code": "A B", "name": "Ferritin", "turnaround_hours": "0"})
    body = bad.get_data(as_text=True)
    assert "Use letters, digits, dots, dashes or underscores only." in body
    assert "Enter a turnaround from 1 to 2160 hours." in body
    show = f"/lab-tests/show/{lab['glu']}"
    refused = post(owner, f"/lab-tests/{lab['glu']}/ranges",
                   {"sex": "male", "age_min_years": "0", "low": "9", "high": "3"}, show)
    assert "The high limit must not be below the low limit." in refused.get_data(as_text=True)
    refused = post(owner, f"/lab-tests/{lab['glu']}/ranges",
                   {"sex": "male", "age_min_years": "60", "age_max_years": "30", "low": "abc"}, show)
    body = refused.get_data(as_text=True)
    assert "Low limit: enter a number, e.g. 5.4." in body
    refused = post(owner, f"/lab-tests/{lab['glu']}/ranges",
                   {"sex": "male", "age_min_years": "60", "age_max_years": "30", "low": "70"}, show)
    assert "The age band must end after it starts" in refused.get_data(as_text=True)
    added = post(owner, f"/lab-tests/{lab['glu']}/ranges",
                 {"sex": "male", "age_min_years": "65", "low": "70", "high": "110"}, show)
    assert added.status_code == 302
    assert "70–110" in owner.get(show).get_data(as_text=True)


def test_the_printed_report_escapes_text_and_shows_ranges_flags_and_sign_off(app, lab):
    order_id = new_order(app, lab)
    ids = result_ids(app, order_id)
    with app.app_context():
        order = db.session.get(LabOrder, order_id)
        order.clinical_notes = PAYLOAD
        collect_sample(order)
        enter_results(order, {ids["HBX"]: ResultEntry("18.1", comment=PAYLOAD),
                              ids["GLUX"]: ResultEntry("90"),
                              ids["ABOX"]: ResultEntry(PAYLOAD, abnormal=True)},
                      by=user(app, "labtech"))
        db.session.commit()
    doctor = login_as(app, "doctor")
    response = doctor.get(f"/lab-orders/{order_id}/print")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert PAYLOAD not in body and body.count(ESCAPED) >= 3
    assert "12–15.5" in body and "70–100" in body and "High" in body and "Abnormal" in body
    assert "Provisional — not verified" in body and "Arjun Das" in body
    assert "<style" not in body and " style=" not in body
    with app.app_context():
        verify_results(db.session.get(LabOrder, order_id), by=user(app, "labtech2"))
        db.session.commit()
    body = doctor.get(f"/lab-orders/{order_id}/print").get_data(as_text=True)
    assert "Provisional — not verified" not in body and "Meera Iyer" in body


def test_show_print_and_api_reads_are_access_logged(app, lab):
    order_id = new_order(app, lab)

    def entries(action):
        with app.app_context():
            return db.session.scalar(sa.select(sa.func.count(AuditEntry.id)).where(
                AuditEntry.kind == "access", AuditEntry.model == "LabOrder",
                AuditEntry.action == action, AuditEntry.record_id == str(order_id),
                AuditEntry.subject_id == lab["asha"]))

    doctor = login_as(app, "doctor")
    assert doctor.get(f"/lab-orders/show/{order_id}").status_code == 200
    assert doctor.get(f"/lab-orders/{order_id}/print").status_code == 200
    assert app.test_client().get(f"/api/v1/lab-orders/{order_id}",
                                 headers=bearer_headers(app, "doctor")).status_code == 200
    assert (entries("view"), entries("print"), entries("api_read")) == (1, 1, 1)


def test_the_api_orders_and_reads_with_results(app, lab):
    headers = bearer_headers(app, "doctor")
    client = app.test_client()
    created = client.post("/api/v1/lab-orders/", headers=headers, json={
        "patient_id": lab["ravi"], "test_ids": [lab["glu"]], "priority": "routine"})
    assert created.status_code == 201, created.get_json()
    order_id = created.get_json()["id"]
    refused = client.post("/api/v1/lab-orders/", headers=headers,
                          json={"patient_id": lab["ravi"], "test_ids": []})
    assert refused.status_code == 422 and "at least one test" in refused.get_json()["message"]
    got = client.get(f"/api/v1/lab-orders/{order_id}", headers=headers).get_json()["result"]
    assert got["status"] == "ordered" and got["results"][0]["test_code"] == "GLUX"
    tech = bearer_headers(app, "labtech")
    assert client.post("/api/v1/lab-orders/", headers=tech,
                       json={"patient_id": lab["ravi"], "test_ids": [lab["glu"]]}).status_code == 403


@pytest.mark.parametrize("username", ["reception", "pharmacist", "accountant"])
def test_roles_without_lab_orders_cannot_open_them(app, lab, username):
    order_id = new_order(app, lab)
    client = login_as(app, username)
    for path in ("/lab-orders/list/", f"/lab-orders/show/{order_id}", f"/lab-orders/{order_id}/print"):
        assert client.get(path).status_code == 403, (username, path)
    assert "Lab orders" not in client.get("/").get_data(as_text=True)


def test_each_role_does_only_its_part(app, lab):
    order_id = new_order(app, lab)
    doctor, tech = login_as(app, "doctor"), login_as(app, "labtech")
    assert doctor.get(f"/lab-results/enter/{order_id}").status_code == 403
    assert doctor.post(f"/lab-orders/{order_id}/collect", data={}).status_code in (400, 403)
    assert tech.get("/lab-orders/add").status_code == 403
    assert tech.get(f"/lab-orders/{order_id}/cancel").status_code == 403
    assert tech.get("/lab-tests/add").status_code == 403
    assert login_as(app, "accountant").get("/lab-tests/list/").status_code == 200
    page = doctor.get(f"/patients/show/{lab['asha']}").get_data(as_text=True)
    assert f"/lab-orders/show/{order_id}" in page
    page = login_as(app, "reception").get(f"/patients/show/{lab['asha']}").get_data(as_text=True)
    assert "/lab-orders/show/" not in page


def test_another_branch_gets_404_on_screen_print_api_and_actions(app, lab):
    order_id = new_order(app, lab)  # Downtown
    lakeside = login_as(app, "doctor2")
    assert lakeside.get(f"/lab-orders/show/{order_id}").status_code == 404
    assert lakeside.get(f"/lab-orders/{order_id}/print").status_code == 404
    assert lakeside.get(f"/lab-orders/{order_id}/cancel").status_code == 404
    api = app.test_client().get(f"/api/v1/lab-orders/{order_id}",
                                headers=bearer_headers(app, "doctor2"))
    assert api.status_code == 404
    listed = lakeside.get("/lab-orders/list/").get_data(as_text=True)
    assert f"/lab-orders/show/{order_id}\"" not in listed
    kid_order = new_order(app, lab, patient="kid", tests=("hb",), branch="ls", by="doctor2")
    assert login_as(app, "labtech").get(f"/lab-results/enter/{kid_order}").status_code == 404
    assert login_as(app, "doctor").get(f"/lab-orders/add?patient={lab['kid']}").status_code == 200
