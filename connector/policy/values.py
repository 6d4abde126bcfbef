"""Typed values: xsd:dateTime, xsd:date, xsd:duration, numbers.

Times without a timezone are read as UTC (XSD leaves the comparison of
zoned and unzoned values partly indeterminate; a connector needs an answer).
Durations follow XSD 1.1: a (months, seconds) pair; adding one to a dateTime
adds the months first, pinning the day to the end of a shorter month
(2024-01-31 + P1M = 2024-02-29), then the seconds.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

UTC = timezone.utc

_DURATION = re.compile(
    r"^(-)?P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,6}))?S)?)?$"
)


class Duration:
    """An XSD duration: whole months plus microseconds (both may be negative)."""

    __slots__ = ("months", "micros", "text")

    def __init__(self, months: int = 0, micros: int = 0, text: str | None = None):
        self.months = months
        self.micros = micros
        self.text = text if text is not None else self._iso()

    @classmethod
    def parse(cls, text: str) -> "Duration":
        m = _DURATION.match(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not an xsd:duration (e.g. P1Y, P30D, PT12H)")
        neg, y, mo, w, d, h, mi, s, frac = m.groups()
        months = int(y or 0) * 12 + int(mo or 0)
        secs = int(w or 0) * 7 * 86400 + int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + int(s or 0)
        micros = secs * 1_000_000 + (int((frac or "").ljust(6, "0")) if frac else 0)
        if neg:
            months, micros = -months, -micros
        return cls(months, micros, text.strip())

    @classmethod
    def from_timedelta(cls, td: timedelta) -> "Duration":
        return cls(0, (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds)

    def _iso(self) -> str:
        months, micros = self.months, self.micros
        sign = "-" if (months < 0 or micros < 0) else ""
        months, micros = abs(months), abs(micros)
        y, mo = divmod(months, 12)
        secs, us = divmod(micros, 1_000_000)
        d, secs = divmod(secs, 86400)
        h, secs = divmod(secs, 3600)
        mi, secs = divmod(secs, 60)
        out = sign + "P" + (f"{y}Y" if y else "") + (f"{mo}M" if mo else "") + (f"{d}D" if d else "")
        t = (f"{h}H" if h else "") + (f"{mi}M" if mi else "")
        if secs or us:
            t += f"{secs}.{us:06d}".rstrip("0").rstrip(".") + "S"
        if t:
            out += "T" + t
        return out if out not in ("P", "-P") else "PT0S"

    def add_to(self, dt: datetime) -> datetime:
        return add_duration(dt, self)

    def compare(self, other: "Duration") -> int | None:
        """-1/0/1, or None when XSD leaves the order indeterminate (P1M vs P30D)."""
        if self.months == other.months:
            return (self.micros > other.micros) - (self.micros < other.micros)
        results = set()
        for ref in _REFERENCE_DATES:
            a, b = add_duration(ref, self), add_duration(ref, other)
            results.add((a > b) - (a < b))
        return results.pop() if len(results) == 1 else None

    def __eq__(self, other):
        return isinstance(other, Duration) and self.months == other.months and self.micros == other.micros

    def __hash__(self):
        return hash((self.months, self.micros))

    def __repr__(self):
        return f"Duration({self.text!r})"

    def __str__(self):
        return self.text

    def human(self) -> str:
        parts = []
        y, mo = divmod(abs(self.months), 12)
        secs, us = divmod(abs(self.micros), 1_000_000)
        d, secs = divmod(secs, 86400)
        h, secs = divmod(secs, 3600)
        mi, secs = divmod(secs, 60)
        for n, unit in ((y, "year"), (mo, "month"), (d, "day"), (h, "hour"), (mi, "minute"), (secs, "second")):
            if n:
                parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
        if us and not parts:
            parts.append(f"{us} microseconds")
        return ("minus " if self.months < 0 or self.micros < 0 else "") + (", ".join(parts) or "no time")


_REFERENCE_DATES = tuple(
    datetime(y, m, 1, tzinfo=UTC) for y, m in ((1696, 9), (1697, 2), (1903, 3), (1903, 7))
)

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(y: int, m: int) -> int:
    if m == 2 and (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        return 29
    return _DAYS_IN_MONTH[m - 1]


def add_duration(dt: datetime, dur: Duration) -> datetime:
    if dur.months:
        total = dt.year * 12 + (dt.month - 1) + dur.months
        y, m = divmod(total, 12)
        m += 1
        if not 1 <= y <= 9999:
            raise OverflowError("date out of range")
        dt = dt.replace(year=y, month=m, day=min(dt.day, _days_in_month(y, m)))
    if dur.micros:
        dt = dt + timedelta(microseconds=dur.micros)
    return dt


def parse_datetime(text: str) -> datetime:
    """An xsd:dateTime as an aware datetime (no timezone: UTC)."""
    s = text.strip()
    if "T" not in s and " " not in s:
        raise ValueError(f"{text!r} is not an xsd:dateTime (e.g. 2025-12-31T23:59:59Z)")
    try:
        dt = datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not an xsd:dateTime (e.g. 2025-12-31T23:59:59Z)") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def parse_date(text: str) -> tuple[datetime, datetime]:
    """An xsd:date as the interval [start of day, start of next day)."""
    s = text.strip()
    m = re.match(r"^(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}:\d{2})?$", s)
    if not m:
        raise ValueError(f"{text!r} is not an xsd:date (e.g. 2025-12-31)")
    d = date.fromisoformat(m.group(1))
    tz = UTC
    if m.group(2) and m.group(2) != "Z":
        sign = 1 if m.group(2)[0] == "+" else -1
        hh, mm = m.group(2)[1:].split(":")
        tz = timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    return start, start + timedelta(days=1)


def as_datetime(value) -> datetime:
    """Context-side conversion: datetime (naive = UTC) or ISO string."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_datetime(value)
    raise TypeError(f"expected a datetime, got {type(value).__name__}")


def as_duration(value) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, timedelta):
        return Duration.from_timedelta(value)
    if isinstance(value, str):
        return Duration.parse(value)
    raise TypeError(f"expected a duration, got {type(value).__name__}")


def parse_integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        raise ValueError(f"{value!r} is not an integer")
    s = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    raise ValueError(f"{value!r} is not an integer")


def parse_decimal(value) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return d


def fmt_datetime(dt: datetime) -> str:
    if dt.tzinfo is not None and dt.utcoffset() == timedelta(0):
        s = dt.replace(tzinfo=None).isoformat()
        return s + "Z"
    return dt.isoformat()


def fmt_value(v) -> str:
    if isinstance(v, datetime):
        return fmt_datetime(v)
    if isinstance(v, Duration):
        return f"{v.text} ({v.human()})"
    if isinstance(v, (list, tuple, set, frozenset)):
        return ", ".join(fmt_value(x) for x in v)
    return str(v)
