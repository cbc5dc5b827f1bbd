"""Infringement notices, counter-notices, staff decisions and the detection review queue."""
