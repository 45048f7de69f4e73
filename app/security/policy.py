"""ClinicDesk's permission matrix, as data: the one place that says who may do what.

Every protected route in the app requires one (permission, view) pair: FAB's ``@has_access`` on
views and ``@protect`` on APIs. ClinicDesk's views map their methods onto four permissions
(read, create, edit, delete) with one ``class_permission_name`` shared by a screen and its REST
API, so a role's grants read like the product's role table.

``clinic init`` syncs these grants into the database (``app.security.sync``); the Admin role is
FAB's admin and holds every permission. The authorization-matrix test walks ``app.url_map`` and
fails on any route that is neither public, nor signed-in-only, nor guarded by a pair named here.
"""

from __future__ import annotations

# Roles -----------------------------------------------------------------------------------------
ADMIN = "Admin"
OWNER = "Owner"
DOCTOR = "Doctor"
RECEPTIONIST = "Receptionist"
PHARMACIST = "Pharmacist"
LAB_TECHNICIAN = "Lab technician"
ACCOUNTANT = "Accountant"

#: The roles staff hold besides Admin, in the order screens list them.
STAFF_ROLES = (OWNER, DOCTOR, RECEPTIONIST, PHARMACIST, LAB_TECHNICIAN, ACCOUNTANT)
#: Roles that see every branch's records; everyone else sees only the branches assigned to them.
ALL_BRANCH_ROLES = frozenset({ADMIN, OWNER, ACCOUNTANT})
#: Roles that must sign in with a second factor; the organisation setting extends it to everyone.
TWO_FACTOR_ROLES = frozenset({ADMIN, OWNER})

# Permissions -----------------------------------------------------------------------------------
READ = "can_read"
CREATE = "can_create"
EDIT = "can_edit"
DELETE = "can_delete"
#: How ClinicDesk's views and APIs name their methods' permissions (``method_permission_name``).
VIEW_METHOD_PERMISSIONS = {
    "list": "read",
    "show": "read",
    "add": "create",
    "edit": "edit",
    "delete": "delete",
    # FAB's file download needs UPLOAD_FOLDER, which ClinicDesk does not use: never granted.
    "download": "download",
}
API_METHOD_PERMISSIONS = {
    "get": "read",
    "get_list": "read",
    "info": "read",
    "post": "create",
    "put": "edit",
    "delete": "delete",
}
CRUD = frozenset({READ, CREATE, EDIT, DELETE})
#: Merging a duplicate patient into the surviving record.
MERGE = "can_merge"
#: Seeing "who viewed this record" on a patient's page (the access log's entries for one patient).
SEE_VIEWERS = "can_see_viewers"
#: Moving a lab order through its statuses (sample collected, in progress).
PROGRESS = "can_progress"
#: Cancelling a lab order (with a reason).
CANCEL = "can_cancel"
#: Entering lab results, verifying another person's results, amending verified ones.
ENTER = "can_enter"
VERIFY = "can_verify"
AMEND = "can_amend"
#: Turning a lead into a patient (or linking one) with a booked appointment.
CONVERT = "can_convert"
#: Billing: issuing a draft invoice (it gets its number), voiding one (with a reason), writing a
#: credit note against one; refunding a payment.
ISSUE = "can_issue"
VOID = "can_void"
CREDIT = "can_credit"
REFUND = "can_refund"
#: Stock: adjusting a batch's quantity (with a reason) and writing off expired stock.
ADJUST = "can_adjust"

# Views (class_permission_name) -----------------------------------------------------------------
SETTINGS = "Settings"
BRANCHES = "Branches"
ORGANISATION = "Organisation"
STAFF = "Staff"
JOBS = "Jobs"
OPENAPI = "OpenApi"
#: The audit trail (changes and sign-in events) and the log of reads of patient data.
AUDIT_LOG = "AuditLog"
ACCESS_LOG = "AccessLog"
SWAGGER = "SwaggerView"
#: Patients' demographics (organisation-wide) and, apart, their clinical section.
PATIENTS = "Patients"
PATIENT_CLINICAL = "PatientClinical"
#: The catalogue of services the clinic books (and billing later prices).
SERVICES = "Services"
#: Doctors' profiles: registration number, qualifications, calendar colour.
DOCTOR_PROFILES = "DoctorProfiles"
#: Doctors' working hours and leave, and branch holidays.
SCHEDULES = "Schedules"
#: Appointments: the list, the day list, the calendar, walk-ins, check-in and status changes.
APPOINTMENTS = "Appointments"
CONSULTATIONS = "Consultations"
#: Prescriptions and their printable page.
PRESCRIPTIONS = "Prescriptions"
#: The lab's test catalogue, its orders (and their printable report) and the results in them.
LAB_TESTS = "LabTests"
LAB_ORDERS = "LabOrders"
LAB_RESULTS = "LabResults"
#: The lead pipeline: leads and their board, the communication log, follow-up tasks, and the
#: pipeline's reports (conversion funnel, time to booking, lost reasons).
LEADS = "Leads"
COMMUNICATIONS = "Communications"
FOLLOW_UPS = "FollowUps"
LEAD_REPORTS = "LeadReports"
#: Billing: invoices and credit notes; the pharmacy's bills apart (a pharmacist sees those only);
#: payments and refunds, with their receipts; the branches' price lists and the tax rates.
INVOICES = "Invoices"
PHARMACY_BILLS = "PharmacyBills"
PAYMENTS = "Payments"
PRICE_LISTS = "PriceLists"
TAX_RATES = "TaxRates"
#: The pharmacy: its item catalogue (with reorder levels), suppliers, stock (batches, goods
#: receipts, the ledger) and dispensing.
PHARMACY_ITEMS = "PharmacyItems"
SUPPLIERS = "Suppliers"
STOCK = "Stock"
DISPENSING = "Dispensing"
# FAB's own self-service screens (profile and own password).
USER_VIEW = "Users"
ROLES_VIEW = "Roles"
GROUPS_VIEW = "Groups"
USER_INFO_EDIT = "UserInfoEditView"
RESET_MY_PASSWORD = "ResetMyPasswordView"

#: Every signed-in staff member may see and edit their own profile and change their own password.
SELF_SERVICE: dict[str, frozenset[str]] = {
    USER_VIEW: frozenset({"can_userinfo", "resetmypassword", "userinfoedit"}),
    USER_INFO_EDIT: frozenset({"can_this_form_get", "can_this_form_post"}),
    RESET_MY_PASSWORD: frozenset({"can_this_form_get", "can_this_form_post"}),
    OPENAPI: frozenset({"can_get"}),
    SWAGGER: frozenset({"can_show"}),
    STAFF: frozenset({READ}),
}

#: What each staff role may do beyond self-service. Views not named here are Admin-only.
ROLE_GRANTS: dict[str, dict[str, frozenset[str]]] = {
    OWNER: {
        SETTINGS: frozenset({READ}),
        ORGANISATION: frozenset({READ, EDIT}),
        BRANCHES: frozenset({READ, CREATE, EDIT}),
        # The owner answers for the patients' privacy: who looked at a record, not what it holds.
        PATIENTS: frozenset({READ, EDIT, MERGE, SEE_VIEWERS}),
        SERVICES: frozenset({READ, CREATE, EDIT}),
        DOCTOR_PROFILES: frozenset({READ, CREATE, EDIT}),
        SCHEDULES: frozenset({READ, CREATE, EDIT, DELETE}),
        # The diary for dashboards; no clinical content.
        APPOINTMENTS: frozenset({READ}),
        LAB_TESTS: frozenset({READ, CREATE, EDIT}),
        # The pipeline's funnel and losses, in numbers only.
        LEAD_REPORTS: frozenset({READ}),
        # The pipeline's leads, to follow its work (no changes).
        LEADS: frozenset({READ}),
        # The pipeline's communication log and follow-ups, to follow its work (no changes).
        COMMUNICATIONS: frozenset({READ}),
        FOLLOW_UPS: frozenset({READ}),
    },
    DOCTOR: {
        PATIENTS: frozenset({READ, CREATE, EDIT}),
        PATIENT_CLINICAL: frozenset({READ, EDIT}),
        SERVICES: frozenset({READ}),
        DOCTOR_PROFILES: frozenset({READ}),
        SCHEDULES: frozenset({READ}),
        APPOINTMENTS: frozenset({READ, CREATE, EDIT}),
        CONSULTATIONS: frozenset({READ, CREATE, EDIT}),
        PRESCRIPTIONS: frozenset({READ, CREATE, EDIT}),
        LAB_TESTS: frozenset({READ}),
        LAB_ORDERS: frozenset({READ, CREATE, CANCEL}),
        LAB_RESULTS: frozenset({READ}),
    },
    RECEPTIONIST: {
        PATIENTS: frozenset({READ, CREATE, EDIT}),
        SERVICES: frozenset({READ}),
        DOCTOR_PROFILES: frozenset({READ}),
        # Reception keeps the doctors' diaries.
        SCHEDULES: frozenset({READ, CREATE, EDIT, DELETE}),
        APPOINTMENTS: frozenset({READ, CREATE, EDIT}),
        # Reception works the lead pipeline: enquiries, their stages, and booking them.
        LEADS: frozenset({READ, CREATE, EDIT, CONVERT}),
        # Reception logs calls and messages with leads and patients and keeps their follow-ups.
        COMMUNICATIONS: frozenset({READ, CREATE, EDIT}),
        FOLLOW_UPS: frozenset({READ, CREATE, EDIT}),
    },
    PHARMACIST: {
        PATIENTS: frozenset({READ}),
        PRESCRIPTIONS: frozenset({READ}),
    },
    LAB_TECHNICIAN: {
        PATIENTS: frozenset({READ}),
        LAB_TESTS: frozenset({READ}),
        LAB_ORDERS: frozenset({READ, PROGRESS}),
        LAB_RESULTS: frozenset({READ, ENTER, VERIFY, AMEND}),
    },
    ACCOUNTANT: {
        SETTINGS: frozenset({READ}),
        ORGANISATION: frozenset({READ}),
        BRANCHES: frozenset({READ}),
        PATIENTS: frozenset({READ}),
        SERVICES: frozenset({READ}),
        LAB_TESTS: frozenset({READ}),
    },
}

#: Views that exist for Admin alone (their routes are covered: only Admin is allowed).
ADMIN_ONLY_VIEWS = frozenset(
    {
        JOBS,
        AUDIT_LOG,
        ACCESS_LOG,
        ROLES_VIEW,
        GROUPS_VIEW,
        USER_VIEW,  # the user list itself; staff get only the self-service pairs above
        "ResetPasswordView",
        "MenuApi",
    }
)

# Routes that need no permission ----------------------------------------------------------------
#: Endpoints anyone may open, signed in or not.
PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "appbuilder.static",
        "health.health",
        "ClinicAuthView.login",
        "SecurityApi.login",
        # Signs out whoever is signed in; for a visitor it does nothing.
        "ClinicAuthView.logout",
        "LocaleView.index",
        "UtilView.back",
        # The public appointment request form and its thank-you page (app/views/public.py).
        "PublicRequestView.request_form",
        "PublicRequestView.thanks",
    }
)
#: Endpoints that authenticate by a refresh token in the request, not by session or permission.
REFRESH_TOKEN_ENDPOINTS = frozenset({"SecurityApi.refresh"})
#: The second sign-in step: open to whoever has just passed the password step (a half-signed-in
#: visitor, not yet signed in). It checks that pending state itself and sends everyone else
#: away: visitors to the login page, signed-in users to the home page.
PENDING_SIGN_IN_ENDPOINTS = frozenset({"TotpView.verify"})
#: Every model view's ``action``/``action_post`` routes: open to signed-in users, while each
#: action checks its own (action, view) permission (app/security/actions.py).
ACTION_METHODS = frozenset({"action", "action_post"})
#: Endpoints every signed-in user may open; anonymous visitors are sent to the login page.
SIGNED_IN_ENDPOINTS = frozenset(
    {
        "HomeView.index",
        "BrandingView.logo",
        "TotpView.enroll",
        # Each user's own notifications (the views check the recipient).
        "NotificationView.index",
        "NotificationView.mark_read",
        "NotificationView.mark_all_read",
    }
)


def role_permissions(role: str) -> set[tuple[str, str]]:
    """The (permission, view) pairs a staff role holds, self-service included.

    :raises KeyError: for a role the policy does not define (Admin is synced separately).
    """
    grants = ROLE_GRANTS[role]
    pairs = {(perm, view) for view, perms in SELF_SERVICE.items() for perm in perms}
    pairs |= {(perm, view) for view, perms in grants.items() for perm in perms}
    return pairs


def covered_views() -> set[str]:
    """Every view name the policy speaks of: granted to some role or declared Admin-only."""
    views = set(SELF_SERVICE) | set(ADMIN_ONLY_VIEWS)
    for grants in ROLE_GRANTS.values():
        views |= set(grants)
    return views
