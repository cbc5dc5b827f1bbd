"""Quarterly statistical monitoring: registrations, creators, sales, refunds, complaints and detection alerts."""
