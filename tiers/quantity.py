"""Kubernetes quantities as the models accept them, and their numeric values.

Only the forms the platform uses are accepted: CPU as millicores (``250m``) or whole/decimal cores
(``2``, ``0.5``); memory with a binary suffix (``512Mi``, ``4Gi``). Decimal memory suffixes (``M``,
``G``) are refused on purpose: the seed mixes "MB" and "Mi", and Redis reads ``mb`` as MiB, so one
unit family keeps the headroom arithmetic honest.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CPU = re.compile(r"^(?:(\d+)m|(\d+(?:\.\d{1,3})?))$")
_MEM = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti)$")
_MEM_FACTORS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}


@lru_cache(maxsize=1024)  # pure, and validation asks for the same few values thousands of times
def cpu_millis(value: str) -> int:
    """``"250m"`` -> 250, ``"2"`` -> 2000. Raises ValueError on any other form."""
    m = _CPU.match(value)
    if not m:
        raise ValueError(f"must be a CPU quantity such as 250m or 2, got {value!r}")
    if m.group(1) is not None:
        return int(m.group(1))
    return int(round(float(m.group(2)) * 1000))


@lru_cache(maxsize=1024)
def mem_mib(value: str) -> float:
    """``"512Mi"`` -> 512, ``"4Gi"`` -> 4096. Raises ValueError on any other form."""
    m = _MEM.match(value)
    if not m:
        raise ValueError(f"must be a memory quantity such as 512Mi or 4Gi, got {value!r}")
    return int(m.group(1)) * _MEM_FACTORS[m.group(2)]
