"""Secrets, tokens, CSRF, safe redirects and login throttling: small pure helpers."""
