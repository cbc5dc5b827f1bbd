"""Outbox of messages to people (complaint parties, earlier owners), delivered after commit."""
