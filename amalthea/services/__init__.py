"""Helpers for writing hub services (``auth``: users log in to your service via the hub)."""
