"""The IPython shell of the fast kernel: ipykernel's, minus work that cannot change the outcome.

Three shortcuts, each taken only when the full path provably gives the same answer:

- **Quiet results.** Before showing a result, IPython's display hook asks whether the cell ends
  in ``;`` (which hides it) by tokenizing the whole cell: about 10 µs for ``1+1``, more than
  0.5 ms for a 60-line cell, and with ``store_history=False`` (what benchmarks and many
  frontends send for scratch executions) the cell it reads is the last one *stored*, so every
  small execution after a long cell pays for that long cell. A cell without any ``;``
  character cannot end in a ``;`` token.
- **Top-level await.** For every cell IPython compiles the code a second time with
  ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` to learn whether it needs a coroutine runner. Only ``await``,
  ``async for``, ``async with`` and async comprehensions make it one, and each needs the ASCII
  keyword in the source (a non-ASCII look-alike is an identifier, never a keyword), so a cell
  with neither ``await`` nor ``async`` in it runs synchronously.
- **Plain results.** Showing a result asks every formatter (HTML, Markdown, LaTeX, JSON, PNG,
  ... ten of them) for its representation: each walks the type's MRO through its registered
  printers and looks for a ``_repr_*_`` method, ~20 µs apiece. For an exact ``int``, ``str``,
  ``list``, ``dict`` and the other built-in types in :data:`SIMPLE_TYPES`, neither the type
  nor its instances can carry ``_repr_*_`` methods, so if none of IPython's own formatters
  has a printer registered for the type, its MRO or that very object, only ``text/plain``
  can answer, and we ask only it. Custom formatter classes, ``include``/``exclude`` and
  anything else go through IPython.
"""

from __future__ import annotations

from typing import Any

from ipykernel.displayhook import ZMQShellDisplayHook
from ipykernel.zmqshell import ZMQInteractiveShell
from IPython.core import formatters as fmt
from traitlets import Type

__all__ = [
    "SIMPLE_TYPES",
    "FastDisplayFormatter",
    "FastDisplayHook",
    "FastZMQInteractiveShell",
]

PLAIN = "text/plain"
# Built-in types whose instances have no __dict__ and whose class attributes cannot be set.
SIMPLE_TYPES = frozenset(
    {int, float, complex, bool, str, bytes, list, tuple, dict, set, frozenset, range}
)
# IPython's formatter classes: their answer is a registered printer or a _repr_*_ method.
_KNOWN_FORMATTERS = frozenset(
    getattr(fmt, name)
    for name in (
        "HTMLFormatter",
        "MarkdownFormatter",
        "SVGFormatter",
        "PNGFormatter",
        "PDFFormatter",
        "JPEGFormatter",
        "LatexFormatter",
        "JSONFormatter",
        "JavascriptFormatter",
        "IPythonDisplayFormatter",
        "MimeBundleFormatter",
    )
    if hasattr(fmt, name)
)


class FastDisplayHook(ZMQShellDisplayHook):
    def quiet(self) -> bool:
        shell: Any = self.shell
        try:
            cell = shell.history_manager.input_hist_parsed[-1]
        except IndexError:
            return False
        if ";" not in cell:
            return False
        return bool(super().quiet())


class FastDisplayFormatter(fmt.DisplayFormatter):
    """IPython's DisplayFormatter that asks only ``text/plain`` when no other can answer."""

    def format(self, obj: Any, include: Any = None, exclude: Any = None) -> Any:
        if include is None and exclude is None and type(obj) in SIMPLE_TYPES:
            plain = self._only_plain(obj)
            if plain is not None:
                data, md = plain(obj), None
                if isinstance(data, tuple) and len(data) == 2:
                    data, md = data
                return (
                    {} if data is None else {PLAIN: data},
                    {} if md is None else {PLAIN: md},
                )
        return super().format(obj, include, exclude)

    def _only_plain(self, obj: Any) -> Any:
        """The text/plain formatter if no other formatter has a printer for ``obj``."""
        plain = None
        others = [self.ipython_display_formatter, self.mimebundle_formatter]
        for mime, formatter in self.formatters.items():
            if mime == PLAIN:
                plain = formatter
            else:
                others.append(formatter)
        if type(plain) is not fmt.PlainTextFormatter:
            return None
        mro = type(obj).__mro__
        for formatter in others:
            if type(formatter) not in _KNOWN_FORMATTERS:
                return None
            if id(obj) in formatter.singleton_printers:
                return None
            printers, deferred = formatter.type_printers, formatter.deferred_printers
            for cls in mro:
                if cls in printers or (cls.__module__, cls.__name__) in deferred:
                    return None
        return plain


class FastZMQInteractiveShell(ZMQInteractiveShell):
    displayhook_class = Type(FastDisplayHook)

    def init_display_formatter(self) -> None:
        super().init_display_formatter()
        # Re-classed in place (it adds no state) unless config put another class there.
        if type(self.display_formatter) is fmt.DisplayFormatter:
            self.display_formatter.__class__ = FastDisplayFormatter

    def should_run_async(
        self,
        raw_cell: str,
        *,
        transformed_cell: str | None = None,
        preprocessing_exc_tuple: Any = None,
    ) -> bool:
        if (
            transformed_cell is not None
            and "await" not in transformed_cell
            and "async" not in transformed_cell
        ):
            return False
        return bool(
            super().should_run_async(
                raw_cell,
                transformed_cell=transformed_cell,
                preprocessing_exc_tuple=preprocessing_exc_tuple,
            )
        )
