"""Quarterly statistical monitoring: registrations, creators, sales, complaints and detection alerts."""
