"""Data scripts."""
