"""Append-only audit trail of every state change that matters."""
