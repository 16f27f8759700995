"""Typed recipe and stage configuration (pydantic, unknown keys are errors)."""
