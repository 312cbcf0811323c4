"""Put a mixin in front of a jupyter_server class that config may already have replaced."""

from __future__ import annotations

__all__ = ["with_mixin"]


def with_mixin(mixin: type, cls: type, prefix: str, module: str) -> type:
    """``cls`` with ``mixin`` in front, named ``<prefix><cls name>``; ``cls`` itself if it
    already has the mixin (so wrapping twice is harmless)."""
    if issubclass(cls, mixin):
        return cls

    # A class statement, not type(): traitlets' metaclass must build the subclass. The
    # subclass keeps reading ``c.<BaseName>`` config, as traitlets follows the MRO.
    class Mixed(mixin, cls):  # type: ignore[misc]
        pass

    Mixed.__name__ = Mixed.__qualname__ = f"{prefix}{cls.__name__}"
    Mixed.__module__ = module
    return Mixed
