"""Parsing of resource quantities written by admins ("2G", "512M", 1.5 cores).

One meaning for every spawner: memory suffixes are binary (1K = 1024 bytes), as Docker,
Kubernetes ("Ki") and Slurm ("--mem=2G") read them.
"""

from __future__ import annotations

_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_memory(value: int | str) -> int:
    """'2G' -> 2147483648. Raises ValueError naming the bad value and the accepted forms."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"memory limit must be positive, got {value}")
        return value
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    number, suffix = (text[:-1], text[-1]) if text and text[-1] in "KMGT" else (text, "")
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(
            f"memory limit {value!r} is not understood: write bytes or a number with K, M, G or T, "
            "e.g. '512M' or '2G'"
        ) from None
    if amount <= 0:
        raise ValueError(f"memory limit must be positive, got {value!r}")
    return int(amount * _SUFFIXES[suffix])


def parse_cpu(value: float | str) -> float:
    """'1.5' or 1.5 -> 1.5 cores; '500m' -> 0.5 (Kubernetes millicores)."""
    text = str(value).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ValueError(
            f"CPU limit {value!r} is not understood: write a number of cores like 1.5 or '500m'"
        ) from None
    if cores <= 0:
        raise ValueError(f"CPU limit must be positive, got {value!r}")
    return cores
