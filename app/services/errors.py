"""The base of every rule a service enforces; views and APIs turn these into messages."""


class ClinicError(Exception):
    """A business rule refused the request. ``str(error)`` is a translated sentence for the user."""
