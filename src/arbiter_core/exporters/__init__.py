"""Exporters of arbiter_core figures to monitoring systems (optional extras)."""
