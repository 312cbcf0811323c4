"""The IPython shell of the fast kernel: ipykernel's, minus a tokenizer run per result.

Before showing a result, IPython's display hook asks whether the cell ends in ``;`` (which
hides it) by tokenizing the whole cell: about 10 µs for ``1+1``, more than 0.5 ms for a
60-line cell, and with ``store_history=False`` (what benchmarks and many frontends send for
scratch executions) the cell it reads is the last one *stored*, so every small execution after a
long cell pays for that long cell. A cell without any ``;`` character cannot end in a ``;``
token, so we answer that case from a substring test and leave every other cell to IPython.
"""

from __future__ import annotations

from typing import Any

from ipykernel.displayhook import ZMQShellDisplayHook
from ipykernel.zmqshell import ZMQInteractiveShell
from traitlets import Type

__all__ = ["FastDisplayHook", "FastZMQInteractiveShell"]


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


class FastZMQInteractiveShell(ZMQInteractiveShell):
    displayhook_class = Type(FastDisplayHook)
