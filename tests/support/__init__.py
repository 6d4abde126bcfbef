"""Test helpers shared by the test modules (not a test package itself)."""
