"""Test-only helpers (not part of the shipped packages)."""
