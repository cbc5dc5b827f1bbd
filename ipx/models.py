"""Imports every domain's models so Base.metadata knows all tables (for Alembic)."""

from ipx.accounts import models as accounts_models
from ipx.audit import models as audit_models
from ipx.complaints import models as complaints_models
from ipx.marketplace import models as marketplace_models
from ipx.notifications import models as notifications_models
from ipx.registry import models as registry_models
from ipx.witness import models as witness_models

__all__ = [
    "accounts_models", "audit_models", "complaints_models", "marketplace_models", "notifications_models",
    "registry_models", "witness_models",
]
