"""pytest plugin registered under the ``pytest11`` entry point ``amalthea``.

Fixtures for our own tests and for plugin authors' tests. Kept import-light: heavy fixtures
live in their own modules and are imported lazily.
"""
