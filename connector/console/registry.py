"""The node console's registry search: the station registry, asked with this node's own token
(as `connector search` does), by words, jurisdiction, theme, purpose and "usable by"."""
from __future__ import annotations

from typing import Any, Mapping

from ..identity.search import SearchError, search_registry
from ..protocol.errors import clip
from . import i18n

FIELDS = ("q", "jurisdiction", "theme", "purpose", "usableBy")


async def registry_context(settings: Any, params: Mapping[str, str]) -> dict[str, Any]:
    """The form's values, and (when one was filled in) the results or the station's reason."""
    query = {k: str(params.get(k, "")).strip()[:500] for k in FIELDS}
    asked = {k: v for k, v in query.items() if v}
    context: dict[str, Any] = {"query": query, "results": [], "error": "", "searched": bool(asked),
                               "registry_available": settings.identity_mode == "station"}
    if not asked:
        return context
    if not context["registry_available"]:
        context["error"] = i18n.gettext("The registry search needs a node enrolled at the station.")
        return context
    try:
        found = await search_registry(settings, asked)
    except SearchError as exc:
        text = str(exc)
        # our own station's address is not shown; the rest is the station's (or our token's) reason
        context["error"] = clip(text.split(" at ", 1)[0] if text.startswith("cannot reach") else text, 300)
        return context
    results = found.get("results")
    context["results"] = [r for r in results if isinstance(r, dict)][:200] if isinstance(results, list) else []
    return context
