"""Checks of settings where they enter (ModelConfig, TrainConfig, the verbs' numbers), each
raising ValueError with one line that names the owner, the setting and the value."""

from __future__ import annotations

import math
import numbers


def integer(owner: str, name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) within [minimum, maximum], as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        raise ValueError(f"{owner}: {name} must be an integer{_range(minimum, maximum)}; got {value!r}")
    return int(value)


def number(owner: str, name: str, value, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """A finite real number within [minimum, maximum], and above 0 when `positive`."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok or (positive and value <= 0):
        limits = " > 0" if positive else _range(minimum, maximum)
        raise ValueError(f"{owner}: {name} must be a finite number{limits}; got {value!r}")
    return float(value)


def integers(owner: str, name: str, values, *, lengths=None, minimum: int = 1) -> tuple:
    """A list or tuple of ints >= minimum, of one of `lengths` entries when given."""
    if not isinstance(values, (list, tuple)) or (lengths is not None and len(values) not in lengths):
        count = f" of {' or '.join(map(str, lengths))} entries" if lengths is not None else ""
        raise ValueError(f"{owner}: {name} must be a list{count} of integers >= {minimum}; got {values!r}")
    return tuple(integer(owner, f"{name} entry", v, minimum=minimum) for v in values)


def sizes(owner: str, name: str, values, count: int) -> tuple:
    """`count` positive finite numbers (a list, tuple, array or tensor of them), as floats."""
    try:
        entries = [float(v) if hasattr(v, "item") else v for v in values]  # NumPy and torch scalars
    except TypeError:  # a bare number or None: not a sequence
        entries = None
    if isinstance(values, (str, bytes)) or entries is None or len(entries) != count:
        raise ValueError(f"{owner}: {name} must be {count} sizes in mm; got {values!r}")
    return tuple(number(owner, name, v, positive=True) for v in entries)


def odd(owner: str, name: str, value, *, maximum: int | None = None) -> int:
    """A positive odd int: a window or kernel with a centre."""
    if integer(owner, name, value, minimum=1, maximum=maximum) % 2 == 0:
        raise ValueError(f"{owner}: {name} must be a positive odd integer; got {value!r}")
    return int(value)


def choice(owner: str, name: str, value, choices) -> object:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be true or false; got {value!r}")
    return value


def text(owner: str, name: str, value, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{owner}: {name} must be a non-empty string; got {value!r}")
    return value


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""
