"""Statistics tests seed data through the real API, with the complaint tests' staff fixture."""

from tests.complaints.conftest import make_staff

__all__ = ["make_staff"]
