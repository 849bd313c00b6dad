"""Validation of numbers at the edge: one NaN-proof check per kind of value, used by every config.

Every check raises ``RobustqError`` naming the value; comparisons are written so that NaN fails
them (``not lo <= x <= hi`` is true for NaN), and infinities are refused explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from robustq.utils.errors import RobustqError

SIGMA_MAX = 4.0   # [0, 1] pixel units: beyond this the image is drowned in noise


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise ``RobustqError`` with the message of the first check that is false (a config's
    ``__post_init__`` lists its checks as (condition, message) pairs)."""
    for ok, message in checks:
        if not ok:
            raise RobustqError(message)


def check_sigma(sigma: object, what: str = "sigma", allow_zero: bool = False) -> float:
    """A noise level in [0, 1] pixel units: finite, > 0 (>= 0 with ``allow_zero``, for
    training) and at most ``SIGMA_MAX``. Returns it as a float."""
    value = check_finite(sigma, what)
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= SIGMA_MAX):
        bound = "[0, 4]" if allow_zero else "(0, 4]"
        raise RobustqError(f"{what} must lie in {bound} (pixel units), got {sigma}")
    return value


def check_finite(value: object, what: str) -> float:
    """A real number (not a bool), finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RobustqError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise RobustqError(f"{what} must be finite, got {value}")
    return float(value)


def check_int(value: object, what: str, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) in [low, high] where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RobustqError(f"{what} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise RobustqError(f"{what} must lie in [{lo}, {hi}], got {value}")
    return value


def parse_number(text: str, what: str) -> float:
    """'0.5', '2/255' or '1e-3' as a finite float; '1/0', 'nan', 'inf' and junk refused."""
    part = text.strip()
    try:
        num, sep, den = part.partition("/")
        value = float(Fraction(num.strip()) / Fraction(den.strip())) if sep else float(part)
    except (ValueError, ZeroDivisionError):
        raise RobustqError(f"{what}: not a finite number or fraction: {text!r}") from None
    return check_finite(value, what)


def parse_int(text: str, what: str) -> int:
    """An integer written in decimal ('4'); anything else refused."""
    try:
        return int(text.strip())
    except ValueError:
        raise RobustqError(f"{what}: not an integer: {text!r}") from None


def parse_numbers(text: str, what: str) -> tuple[float, ...]:
    """A comma-separated list of ``parse_number`` values; an empty list is refused."""
    parts = [p for p in (q.strip() for q in text.split(",")) if p]
    if not parts:
        raise RobustqError(f"{what}: expected one or more numbers, got {text!r}")
    return tuple(parse_number(p, what) for p in parts)


def parse_names(text: str, what: str) -> tuple[str, ...]:
    """A comma-separated list of names; an empty list (``''`` or ``','``) is refused."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names:
        raise RobustqError(f"{what}: expected one or more comma-separated names, got {text!r}")
    return names
