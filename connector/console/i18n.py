"""The console's languages: English, Traditional Chinese (Hong Kong) and Simplified Chinese.

Message catalogs are Babel .po files in `locales/`; they are compiled in memory when first
used (no build step: a fresh clone installed with `pip install -e .` has them). The viewer's
language comes from the `hks_lang` cookie (the switch) or else `Accept-Language`; dates are
shown in the viewer's locale and time zone, with the zone named."""
from __future__ import annotations

import contextvars
import io
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_decimal
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).parent / "locales"
#: locale id -> (BCP 47 tag for <html lang>, its name in itself, default time zone)
LANGUAGES: dict[str, tuple[str, str, str]] = {
    "en": ("en", "English", "UTC"),
    "zh_Hant_HK": ("zh-Hant-HK", "繁體中文（香港）", "Asia/Hong_Kong"),
    "zh_Hans": ("zh-Hans", "简体中文", "Asia/Shanghai"),
}
DEFAULT = "en"
_current: contextvars.ContextVar[NullTranslations] = contextvars.ContextVar("console_translations")


@lru_cache(maxsize=None)
def translations(locale: str) -> NullTranslations:
    """The compiled catalog of `locale` (English: the identity)."""
    po = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if locale == DEFAULT or not po.is_file():
        return NullTranslations()
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def activate(locale: str) -> None:
    _current.set(translations(locale))


def gettext(message: str) -> str:
    return _current.get(translations(DEFAULT)).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.get(translations(DEFAULT)).ungettext(singular, plural, n)


def sentence(text: Any) -> str:
    """One of the policy engine's sentences (an `explain.Msg`: message id and parameters) in the
    viewer's language; plain text (a peer's reason, received in English) as it is."""
    render = getattr(text, "render", None)
    return render(gettext) if render is not None else str(text)


def _map_tag(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if tag.startswith("en"):
        return "en"
    if tag == "zh" or tag.startswith("zh-"):
        parts = tag.split("-")
        if "hant" in parts or any(p in ("hk", "tw", "mo") for p in parts):
            return "zh_Hant_HK"
        return "zh_Hans"
    return None


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice if valid, else the first language of Accept-Language we speak, else English."""
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:500].split(",")[:20]):
        tag, _, params = part.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        mapped = _map_tag(tag)
        if mapped and q > 0:
            weighted.append((-q, i, mapped))
    return sorted(weighted)[0][2] if weighted else DEFAULT


def zone(locale: str, cookie: str | None) -> ZoneInfo:
    if cookie and len(cookie) <= 64:
        try:
            return ZoneInfo(cookie)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(LANGUAGES.get(locale, LANGUAGES[DEFAULT])[2])


def format_time(ts: Any, locale: str, tz: ZoneInfo) -> str:
    """A timestamp (seconds, or ISO 8601 text) in the viewer's locale, with the time zone named."""
    if ts is None or ts == "":
        return ""
    try:
        if isinstance(ts, (int, float)):
            moment = datetime.fromtimestamp(float(ts), timezone.utc)
        else:
            moment = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return str(ts)[:40]
    text = format_datetime(moment, format="medium", tzinfo=tz, locale=Locale.parse(locale))
    return f"{text} ({tz.key})"


def format_bytes(count: int, locale: str) -> str:
    """A byte count in the viewer's locale: exact below 1 KiB, else in KiB/MiB/GiB with the exact count."""
    exact = format_decimal(count, locale=Locale.parse(locale))
    if count < 1024:
        return ngettext("%(n)s byte", "%(n)s bytes", count) % {"n": exact}
    size, unit = float(count), "B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024:
            break
    short = format_decimal(round(size, 1), format="#,##0.0", locale=Locale.parse(locale))
    return gettext("%(size)s %(unit)s (%(n)s bytes)") % {"size": short, "unit": unit, "n": exact}
