"""The hub's page templates (Jinja2), loaded on the first page that renders one.

Why lazy: importing jinja2 and building the environment is tens of milliseconds of every hub
start (issue 3: restart time), and the REST API, which is what answers first after a restart,
never renders a page. ``tests/hub/test_startup_imports.py`` keeps jinja2 off the startup path.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

__all__ = ["PageTemplates"]


class PageTemplates:
    """``get_template(name)`` from one directory; the Jinja2 environment is built on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @functools.cached_property
    def env(self) -> jinja2.Environment:
        import jinja2

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.directory)),
            autoescape=jinja2.select_autoescape(["html"]), enable_async=False,
            # templates ship with the package; checking their mtimes costs stat() calls per page
            auto_reload=False,
        )  # fmt: skip

    def get_template(self, name: str) -> jinja2.Template:
        return self.env.get_template(name)
