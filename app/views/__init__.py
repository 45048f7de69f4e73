"""``register_views``: the one place screens and APIs are added to the app."""

from __future__ import annotations

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_babel import lazy_gettext as _l

from app import formatting
from app.security.totp_views import TotpView
from app.views.appointments import (
    AppointmentApi,
    AppointmentModelView,
    status_label,
)
from app.views.audit import AccessLogModelView, AuditLogModelView
from app.views.calendar import AppointmentCalendarView
from app.views.catalogue import ServiceApi, ServiceModelView
from app.views.communications import (
    CommunicationApi,
    CommunicationModelView,
    communication_label,
)
from app.views.consultations import ConsultationApi, ConsultationModelView
from app.views.follow_ups import FollowUpApi, FollowUpModelView
from app.views.health import bp as health_bp
from app.views.jobs import JobsView
from app.views.lab import LabOrderApi, LabOrderModelView
from app.views.lab_catalogue import LabTestModelView
from app.views.lab_results import LabResultsView
from app.views.lead_board import LeadBoardView
from app.views.lead_reports import LeadReportView
from app.views.leads import LeadApi, LeadModelView, source_label, stage_label
from app.views.patients import PatientApi, PatientClinicalView, PatientModelView
from app.views.notifications import NotificationView, notification_context
from app.views.prescriptions import PrescriptionApi, PrescriptionModelView
from app.views.public import PublicRequestView, limit_public_form
from app.views.settings import (
    BranchApi,
    BrandingView,
    BranchModelView,
    OrganisationModelView,
    SettingsView,
)
from app.views.schedules import (
    DoctorLeaveModelView,
    DoctorProfileModelView,
    HolidayModelView,
    WorkingHoursModelView,
)
from app.views.staff import StaffModelView


def register_views(app: Flask, appbuilder: AppBuilder) -> None:
    """Add every ClinicDesk screen, API and blueprint; menu order is the order below."""
    app.register_blueprint(health_bp)
    app.add_template_filter(formatting.phone, "phone")
    app.add_template_filter(formatting.branch_time, "branch_time")
    app.add_template_filter(status_label, "appointment_status")
    app.add_template_filter(stage_label, "lead_stage")
    app.add_template_filter(source_label, "lead_source")
    app.add_template_filter(communication_label, "communication_label")

    appbuilder.add_view(
        PatientModelView, "Patients", label=_l("Patients"), icon="fa-hospital-user",
    )
    appbuilder.add_view(
        LeadModelView, "Leads", label=_l("Leads"), icon="fa-bullseye",
    )
    appbuilder.add_view(
        CommunicationModelView, "Communications", label=_l("Communications"),
        icon="fa-comments",
    )
    appbuilder.add_view(
        FollowUpModelView, "Follow-ups", label=_l("Follow-ups"), icon="fa-list-check",
    )
    appbuilder.add_view(
        LeadBoardView, "Pipeline board", label=_l("Pipeline"), icon="fa-table-columns",
    )
    appbuilder.add_view(
        AppointmentModelView, "Appointments", label=_l("Appointments"),
        icon="fa-calendar-check",
    )
    calendar = appbuilder.add_view(
        AppointmentCalendarView, "Calendar", label=_l("Calendar"), icon="fa-calendar-days",
    )
    appbuilder.add_link(
        "Today", href="AppointmentCalendarView.day", label=_l("Today"), icon="fa-list-check",
        baseview=calendar,
    )
    appbuilder.add_view(
        ConsultationModelView, "Consultations", label=_l("Consultations"),
        icon="fa-stethoscope",
    )
    appbuilder.add_view(
        PrescriptionModelView, "Prescriptions", label=_l("Prescriptions"),
        icon="fa-prescription",
    )
    appbuilder.add_view(
        LabOrderModelView, "Lab orders", label=_l("Lab orders"), icon="fa-flask",
    )
    appbuilder.add_view(
        LeadReportView, "Lead funnel", label=_l("Lead funnel"), icon="fa-chart-column",
        category="Reports", category_label=_l("Reports"),
    )
    appbuilder.add_view(
        StaffModelView, "Staff directory", label=_l("Staff"), icon="fa-users", category="Team",
        category_label=_l("Team"),
    )
    appbuilder.add_view(
        DoctorProfileModelView, "Doctors", label=_l("Doctors"), icon="fa-user-doctor",
        category="Team",
    )
    appbuilder.add_view(
        WorkingHoursModelView, "Working hours", label=_l("Working hours"), icon="fa-clock",
        category="Team",
    )
    appbuilder.add_view(
        DoctorLeaveModelView, "Leave", label=_l("Leave"), icon="fa-plane-departure",
        category="Team",
    )
    appbuilder.add_view(
        HolidayModelView, "Holidays", label=_l("Holidays"), icon="fa-umbrella-beach",
        category="Team",
    )
    appbuilder.add_view(
        ServiceModelView, "Services", label=_l("Services"), icon="fa-list-check",
        category="Catalogues", category_label=_l("Catalogues"),
    )
    appbuilder.add_view(
        LabTestModelView, "Lab tests", label=_l("Lab tests"), icon="fa-vial",
        category="Catalogues", category_label=_l("Catalogues"),
    )
    appbuilder.add_view(
        SettingsView, "Organisation settings", label=_l("Settings"), icon="fa-gear",
        category="Administration", category_label=_l("Administration"),
    )
    appbuilder.add_view(
        JobsView, "Background jobs", label=_l("Background jobs"), icon="fa-gears",
        category="Administration",
    )
    appbuilder.add_view(
        AuditLogModelView, "Audit log", label=_l("Audit log"), icon="fa-clipboard-list",
        category="Administration",
    )
    appbuilder.add_view(
        AccessLogModelView, "Access log", label=_l("Access log"), icon="fa-eye",
        category="Administration",
    )
    _relabel_security_menu(appbuilder)
    appbuilder.add_view_no_menu(BranchModelView)
    appbuilder.add_view_no_menu(OrganisationModelView)
    appbuilder.add_view_no_menu(BrandingView)
    appbuilder.add_view_no_menu(TotpView)
    appbuilder.add_view_no_menu(PatientClinicalView)
    appbuilder.add_view_no_menu(LabResultsView)
    appbuilder.add_view_no_menu(NotificationView)
    app.context_processor(notification_context)
    limit_public_form(appbuilder, appbuilder.add_view_no_menu(PublicRequestView))
    appbuilder.add_api(BranchApi)
    appbuilder.add_api(PatientApi)
    appbuilder.add_api(LeadApi)
    appbuilder.add_api(CommunicationApi)
    appbuilder.add_api(FollowUpApi)
    appbuilder.add_api(ServiceApi)
    appbuilder.add_api(AppointmentApi)
    appbuilder.add_api(ConsultationApi)
    appbuilder.add_api(PrescriptionApi)
    appbuilder.add_api(LabOrderApi)


def _relabel_security_menu(appbuilder: AppBuilder) -> None:
    """FAB names its entries "List Users" and so on; the menu reads better without "List"."""
    labels = {"List Users": _l("Users"), "List Roles": _l("Roles"), "List Groups": _l("Groups")}
    for name, label in labels.items():
        item = appbuilder.menu.find(name)
        if item is not None:
            item.label = label
