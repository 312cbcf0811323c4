"""The hub's HTTP layer: REST API (``api/``) and HTML pages (``pages/``) on Tornado."""
