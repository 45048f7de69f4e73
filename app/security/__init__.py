"""Authentication, permissions as policy data, and branch scoping."""
