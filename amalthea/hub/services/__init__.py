"""Hub-managed and external services (protocol §10): see ``manager.py``."""

from amalthea.hub.services.manager import ServiceError, ServiceManager, validate_spec

__all__ = ["ServiceError", "ServiceManager", "validate_spec"]
