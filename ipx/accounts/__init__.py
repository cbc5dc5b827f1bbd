"""Accounts, roles and bearer tokens."""
