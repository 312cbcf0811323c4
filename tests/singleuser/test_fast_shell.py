"""The fast kernel's display formatter gives IPython's answers (kernel/shell.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from IPython.core.formatters import DisplayFormatter

from amalthea.singleuser.kernel.app import cache_accepts_parameters, trim_logger_level
from amalthea.singleuser.kernel.shell import SIMPLE_TYPES, FastDisplayFormatter


class Rich:
    def _repr_html_(self) -> str:
        return "<i>rich</i>"


SAMPLES: list[Any] = [
    1, -2**70, 1.5, 2j, True, None, "text", b"bytes", [1, "a"], (1,), {"k": [1]}, {1, 2},
    frozenset({3}), range(4), Rich(), object(),
]  # fmt: skip


@pytest.fixture
def pair() -> tuple[DisplayFormatter, FastDisplayFormatter]:
    return DisplayFormatter(), FastDisplayFormatter()


def test_every_builtin_in_the_shortcut_has_a_sample() -> None:
    assert SIMPLE_TYPES <= {type(s) for s in SAMPLES}


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: type(o).__name__)
def test_same_answer_as_ipython(pair: Any, obj: Any) -> None:
    stock, fast = pair
    assert fast.format(obj) == stock.format(obj)


def register(formatters: list[DisplayFormatter], how: str) -> Any:
    """Register a printer ``how`` on each formatter; return an object it applies to."""
    sample: Any = [1, 2]
    for f in formatters:
        html = f.formatters["text/html"]
        if how == "type":
            html.for_type(int, lambda n: f"<b>{n}</b>")
        elif how == "base":
            html.for_type(object, lambda o: "<u>any</u>")
        elif how == "name":
            html.for_type_by_name("builtins", "list", lambda v: f"<ol>{len(v)}</ol>")
        elif how == "singleton":
            html.singleton_printers[id(sample)] = lambda v: "<s>that one</s>"
        elif how == "mimebundle":
            f.mimebundle_formatter.for_type(list, lambda v: {"x/y": str(v)})
    return 5 if how == "type" else sample


@pytest.mark.parametrize("how", ["type", "base", "name", "singleton", "mimebundle"])
def test_registered_printers_are_honoured(pair: Any, how: str) -> None:
    sample = register(list(pair), how)
    stock, fast = pair
    for obj in [*SAMPLES, sample]:
        assert fast.format(obj) == stock.format(obj), obj
    assert len(fast.format(sample)[0]) == 2  # the registered printer answered too


def test_include_and_exclude_go_through_ipython(pair: Any) -> None:
    stock, fast = pair
    for kw in ({"include": ["text/html"]}, {"exclude": ["text/plain"]}):
        assert fast.format(7, **kw) == stock.format(7, **kw) == ({}, {})


def test_logger_level_follows_its_handlers() -> None:
    log = logging.getLogger("amalthea-test-trim")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    log.addHandler(handler)
    try:
        trim_logger_level(log)
        assert not log.isEnabledFor(logging.DEBUG) and log.isEnabledFor(logging.WARNING)
        handler.setLevel(logging.DEBUG)
        log.setLevel(logging.DEBUG)
        trim_logger_level(log)  # a debug handler keeps debug records
        assert log.isEnabledFor(logging.DEBUG)
        log.propagate = True
        log.setLevel(logging.DEBUG)
        handler.setLevel(logging.ERROR)
        trim_logger_level(log)  # parents' handlers may want them: untouched
        assert log.level == logging.DEBUG
    finally:
        log.removeHandler(handler)


def test_cached_signature_check_gives_the_same_answers() -> None:
    from ipykernel import ipkernel

    before = ipkernel._accepts_parameters
    cache_accepts_parameters()
    try:
        cached = ipkernel._accepts_parameters
        assert getattr(cached, "cached", False)

        class Shell:
            def with_id(self, code: str, cell_id: str = "") -> None: ...
            def anything(self, code: str, **kw: Any) -> None: ...
            def plain(self, code: str) -> None: ...

        shell = Shell()
        for meth in (shell.with_id, shell.anything, shell.plain):
            for _ in range(2):  # computed, then remembered
                answer = cached(meth, ["cell_id", "cell_meta"])
                assert answer == before(meth, ["cell_id", "cell_meta"])
                answer["cell_id"] = "mutated"  # callers get their own copy
    finally:
        ipkernel._accepts_parameters = before
