"""The keys configuration gives the app, as the code uses them.

``config.py`` reads ``CLINICDESK_DATA_KEY`` and ``CLINICDESK_AUDIT_KEY`` or derives each from
``SECRET_KEY`` with HKDF-SHA256 and its own purpose label (``config.derive_key``), so two purposes
never share a key. Rotating ``SECRET_KEY`` changes every derived key: set both variables
explicitly before rotating, or the audit chain stops verifying and stored secrets stop
decrypting.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from flask import current_app


def data_fernet() -> Fernet:
    """Fernet (AES-128-CBC + HMAC-SHA256) under ``DATA_ENCRYPTION_KEY``, for secrets at rest."""
    return Fernet(current_app.config["DATA_ENCRYPTION_KEY"])


def audit_hmac_key() -> bytes:
    """The key of the audit trail's hash chain (HMAC-SHA256)."""
    return current_app.config["AUDIT_HMAC_KEY"].encode()
