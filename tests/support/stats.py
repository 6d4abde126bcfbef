"""Small statistics the benches share."""
from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank, q in [0, 1])."""
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
