"""Content fingerprints: pure functions from uploaded bytes to comparable fingerprints."""
