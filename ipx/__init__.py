"""IPX: register creative works with offline-verifiable evidence, and license them."""

__version__ = "0.1.0"
