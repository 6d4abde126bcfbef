"""Offline JSON-LD processing for DSP messages (the slow path).

This module is pure. It does no file or network I/O and never reads the clock. The caller
passes in the context documents (see :func:`connector.vocab.load_contexts`).

Most DSP messages arrive with the canonical ``@context`` of their version. For those,
:meth:`JsonLdProcessor.is_canonical` is True and the caller can treat the message as plain
JSON (:mod:`connector.protocol.wire`), so PyLD is not involved. PyLD is needed only for other
contexts, for example a 2025-1 message that also carries EDC's
``https://w3id.org/edc/dspace/v0.0.1``, or an EDC 2024/1 message with an inline prefix
context. :meth:`JsonLdProcessor.canonicalize` expands such a message and compacts it back
to the canonical form.

PyLD 3.3.0 traps and how this module avoids them:

* **No network.** Every call passes ``options={"documentLoader": ..., "base": None, ...}``.
  The loader serves only the static documents it was given. Any other URL raises
  :class:`UnknownContext`, which is never fetched. Nothing is installed in PyLD globally:
  no ``set_document_loader``, and no use of PyLD's global resolved-context cache.
* **Default base.** Without ``base=None``, PyLD resolves relative IRIs against
  ``http://example.org/base/``, which corrupts ``@vocab``-typed values such as ``dateTime``
  or ``HttpData-PULL``.
* **@import cache bug.** The 2025-1 context's type-scoped contexts (ContractRequestMessage,
  ContractOfferMessage, ContractAgreementMessage, Dataset) each ``@import`` the ODRL
  profile. PyLD caches the processed import per *active context*, not per importing
  context. Whichever of those types is processed first then also supplies the merged
  context for the others. It also merges the importing context into the cached import
  document in place, so terms leak from one type to another. The visible symptom is that
  compacting a ContractAgreementMessage after a ContractRequestMessage silently drops
  ``agreement``. Clearing ``pyld.jsonld._resolved_context_cache`` before each call, as
  DIGEST §9 suggests, hides the drop. It still leaks terms inside a single call, because
  scoped contexts are pre-processed while the outer context is built. For example, a
  ContractAgreementMessage would keep a ``callbackAddress`` property that the 2025-1
  context does not define for it. It also costs a full re-processing of the 2025-1
  context on every call. This module removes the trigger instead. At construction it
  inlines every ``@import`` (the imported context merged under the importing one, exactly
  as JSON-LD 1.1 defines ``@import``), so PyLD never runs its import code path. The
  processed contexts can then be cached safely, in a cache private to this processor.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Iterable

from pyld import jsonld as _pyld

from .errors import ProtocolError, echo
from .wire import CONTEXT_2024_1, CONTEXT_2025_1, VERSIONS, normalize_lists

try:  # PyLD >= 2.0: per-call resolver with a caller-supplied shared cache
    from pyld.context_resolver import ContextResolver as _ContextResolver
except ImportError:  # pragma: no cover - very old PyLD
    _ContextResolver = None

try:
    from cachetools import LRUCache as _LRUCache  # a PyLD dependency
except ImportError:  # pragma: no cover
    _LRUCache = None

__all__ = [
    "CONTEXT_2025_1",
    "ODRL_PROFILE_2025_1",
    "CONTEXT_2024_1",
    "ODRL_CONTEXT",
    "EDC_CONTEXT",
    "KNOWN_CONTEXTS",
    "NS_DSPACE_2025_1",
    "NS_DSPACE_2024_1",
    "UnknownContext",
    "JsonLdProcessor",
    "detect_version",
    "is_canonical",
    "canonical_context",
    "inline_imports",
]

ODRL_PROFILE_2025_1 = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
EDC_CONTEXT = "https://w3id.org/edc/dspace/v0.0.1"
KNOWN_CONTEXTS = (CONTEXT_2025_1, ODRL_PROFILE_2025_1, CONTEXT_2024_1, ODRL_CONTEXT, EDC_CONTEXT)

NS_DSPACE_2025_1 = "https://w3id.org/dspace/2025/1/"
NS_DSPACE_2024_1 = "https://w3id.org/dspace/2024/1/"

#: Harmless spellings of a known URL
_ALIASES = {"https://www.w3.org/ns/odrl.jsonld": ODRL_CONTEXT}

# PyLD keeps module-level caches (e.g. the inverse-context cache) that are not thread-safe.
_PYLD_LOCK = threading.RLock()


class UnknownContext(ProtocolError, ValueError):
    """A message referenced a remote JSON-LD context that is not served locally.

    The node answers this with a 400 DSP error. The context is never fetched.
    """

    code = "UnknownContext"

    def __init__(self, url: str):
        super().__init__(f"unknown JSON-LD context {echo(url)} (remote contexts are not fetched)")
        self.url = url


def canonical_context(version: str) -> Any:
    """The exact ``@context`` value of a canonical message of ``version``."""
    if version == "2025-1":
        return [CONTEXT_2025_1]
    if version == "2024-1":
        return CONTEXT_2024_1
    raise ValueError(f"unsupported DSP version {version!r} (expected one of {VERSIONS})")


def is_canonical(doc: Any, version: str) -> bool:
    """True when ``doc['@context']`` is exactly the canonical context of ``version``.

    A 2025-1 context is the one-element list and a 2024-1 context is the plain string.
    Such a message can be read as plain JSON, with no JSON-LD processing. This is the
    fast path.
    """
    if not isinstance(doc, dict):
        return False
    ctx = doc.get("@context")
    if version == "2025-1":
        return isinstance(ctx, list) and len(ctx) == 1 and ctx[0] == CONTEXT_2025_1
    if version == "2024-1":
        return ctx == CONTEXT_2024_1
    raise ValueError(f"unsupported DSP version {version!r} (expected one of {VERSIONS})")


def detect_version(doc: Any) -> str | None:
    """Guess the DSP version from ``@context`` alone, or return None.

    An exact canonical context gives the answer at once. Otherwise a context list that
    contains a DSP context URL decides. For anything else (inline contexts, for example),
    only expansion can tell: see :meth:`JsonLdProcessor.canonicalize`.
    """
    if not isinstance(doc, dict):
        return None
    ctx = doc.get("@context")
    if isinstance(ctx, list) and len(ctx) == 1 and ctx[0] == CONTEXT_2025_1:
        return "2025-1"
    if ctx == CONTEXT_2024_1:
        return "2024-1"
    urls = [ctx] if isinstance(ctx, str) else [c for c in ctx if isinstance(c, str)] if isinstance(ctx, list) else []
    if CONTEXT_2025_1 in urls:
        return "2025-1"
    if CONTEXT_2024_1 in urls:
        return "2024-1"
    return None


def inline_imports(documents: dict[str, dict]) -> dict[str, dict]:
    """Return deep copies of ``documents`` with every ``@import`` replaced by its content.

    JSON-LD 1.1 merges an ``@import``-ed context into the importing context, and the
    importing context's own entries win. This does the same merge ahead of time, so PyLD's
    faulty ``@import`` handling is never used. The imported document must be one of
    ``documents``.
    """
    docs = copy.deepcopy(documents)

    def imported(url: str) -> dict:
        url = _ALIASES.get(url, url)
        if url not in documents:
            raise UnknownContext(url)
        ctx = documents[url].get("@context")
        if not isinstance(ctx, dict) or "@import" in ctx:
            raise ValueError(f"@import of {echo(url)} must reference a single context without @import")
        return ctx

    def fix_context(ctx: Any) -> Any:
        if isinstance(ctx, list):
            return [fix_context(c) for c in ctx]
        if not isinstance(ctx, dict):
            return ctx
        if "@import" in ctx:
            merged = copy.deepcopy(imported(ctx["@import"]))
            merged.update({k: v for k, v in ctx.items() if k != "@import"})
            ctx = merged
        for term, definition in list(ctx.items()):
            if isinstance(definition, dict) and "@context" in definition:
                definition["@context"] = fix_context(definition["@context"])
        return ctx

    for doc in docs.values():
        if isinstance(doc, dict) and "@context" in doc:
            doc["@context"] = fix_context(doc["@context"])
    return docs


def _find_unknown_context(exc: BaseException | None) -> UnknownContext | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UnknownContext):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _iter_iris(expanded: Any) -> Iterable[str]:
    """Yield type and property IRIs of the expanded nodes, top-level ones first, then nested ones."""
    queue = list(expanded) if isinstance(expanded, list) else [expanded]
    while queue:
        node = queue.pop(0)
        if isinstance(node, list):
            queue.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        types = node.get("@type", [])
        yield from (t for t in (types if isinstance(types, list) else [types]) if isinstance(t, str))
        for key, value in node.items():
            if not key.startswith("@"):
                yield key
            if isinstance(value, (list, dict)):
                queue.append(value)


class JsonLdProcessor:
    """Expand, compact and canonicalize DSP messages offline with PyLD.

    ``documents`` maps context URL to parsed JSON-LD document, as returned by
    :func:`connector.vocab.load_contexts`. The processor keeps its own copies.
    """

    def __init__(self, documents: dict[str, dict], *, cache_size: int = 64):
        if CONTEXT_2025_1 not in documents or CONTEXT_2024_1 not in documents:
            raise ValueError("the DSP 2025-1 and 2024-1 contexts are required")
        self._documents = inline_imports(documents)
        self._cache: Any = _LRUCache(maxsize=cache_size) if _LRUCache else {}

    # -- PyLD plumbing -------------------------------------------------------------------

    def _load(self, url: str, options: Any = None) -> dict:
        key = _ALIASES.get(url, url)
        doc = self._documents.get(key)
        if doc is None:
            raise UnknownContext(url)
        return {
            "contextUrl": None,
            "documentUrl": url,
            "document": copy.deepcopy(doc),
            "contentType": "application/ld+json",
            "tag": "static",
        }

    def _options(self, **extra: Any) -> dict:
        options = {"documentLoader": self._load, "base": None}
        if _ContextResolver is not None:
            # fresh per call (it holds a per-operation cache); the shared cache is ours only
            options["contextResolver"] = _ContextResolver(self._cache, self._load)
        options.update(extra)
        return options

    def _run(self, fn, *args: Any) -> Any:
        try:
            with _PYLD_LOCK:
                if _ContextResolver is None:  # pragma: no cover - fallback for odd PyLD builds
                    _pyld._resolved_context_cache.clear()
                return fn(*args)
        except UnknownContext:
            raise
        except _pyld.JsonLdError as exc:
            unknown = _find_unknown_context(exc)
            if unknown is not None:
                raise unknown from None
            raise

    # -- public API ----------------------------------------------------------------------

    def expand(self, doc: Any) -> list:
        """Expand a JSON-LD document (a dict or a list, never a URL)."""
        if not isinstance(doc, (dict, list)):
            raise TypeError("expand() takes a JSON object or array, not a URL or scalar")
        return self._run(_pyld.expand, doc, self._options())

    def compact(self, doc: Any, version: str) -> dict:
        """Compact ``doc``, compact or expanded, to the canonical context of ``version``.

        For 2025-1 the result carries ``"@context": [CONTEXT_2025_1]``, and its set-valued
        terms are lists (:func:`connector.protocol.wire.normalize_lists`). For 2024-1 the
        context is the plain URL string.
        """
        return self._compact(doc, version, skip_expansion=False)

    def _compact(self, doc: Any, version: str, *, skip_expansion: bool) -> dict:
        if version == "2025-1":
            ctx = CONTEXT_2025_1
        elif version == "2024-1":
            ctx = CONTEXT_2024_1
        else:
            raise ValueError(f"unsupported DSP version {version!r} (expected one of {VERSIONS})")
        if not isinstance(doc, (dict, list)):
            raise TypeError("compact() takes a JSON object or array, not a URL or scalar")
        out = self._run(_pyld.compact, doc, ctx, self._options(skipExpansion=skip_expansion))
        if version == "2025-1":
            body = normalize_lists({k: v for k, v in out.items() if k != "@context"})
            return {"@context": [CONTEXT_2025_1], **body}
        out["@context"] = CONTEXT_2024_1
        return out

    @staticmethod
    def detect_version(doc: Any) -> str | None:
        return detect_version(doc)

    @staticmethod
    def is_canonical(doc: Any, version: str) -> bool:
        return is_canonical(doc, version)

    @staticmethod
    def version_of_expanded(expanded: Any) -> str | None:
        """The DSP version whose namespace the expanded message uses (top-level node first), or None."""
        for iri in _iter_iris(expanded):
            if iri.startswith(NS_DSPACE_2025_1):
                return "2025-1"
            if iri.startswith(NS_DSPACE_2024_1):
                return "2024-1"
        return None

    def canonicalize(self, doc: dict, version: str | None = None) -> dict:
        """Return ``doc`` in the canonical compact form of its DSP version.

        * Fast path: if ``@context`` is already canonical, return ``doc`` itself, unchanged
          and not copied.
        * Slow path: expand, then compact to the canonical context. With ``version=None``
          the version comes from the namespace of the expanded message, not from the URL
          path or the context URLs, because EDC's "2024/1" inline contexts lie about them.
          The context URL is used only when the message has no ``dspace:`` term at all,
          as with a bare Dataset.

        Raises :class:`UnknownContext` for a context that is not served locally, and
        ``ValueError`` when the message is in neither DSP namespace or its namespace
        contradicts ``version``.
        """
        if version is not None:
            if is_canonical(doc, version):
                return doc
        else:
            guess = detect_version(doc)
            if guess is not None and is_canonical(doc, guess):
                return doc
        expanded = self.expand(doc)
        # Namespace first. A Dataset has no dspace: term at all, so fall back to the
        # context URL, then to the caller's version.
        found = self.version_of_expanded(expanded) or detect_version(doc) or version
        if found is None:
            raise ValueError("not a DSP message: no DSP 2025-1 or 2024-1 term after JSON-LD expansion")
        if version is not None and found != version:
            raise ValueError(f"message uses the DSP {found} namespace, expected {version}")
        return self._compact(expanded, found, skip_expansion=True)
