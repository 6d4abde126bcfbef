"""A small, pure JSON-LD expander for ODRL policies.

It turns compact JSON-LD (the forms DSP 2025-1, DSP 2024/1 and the ODRL 2.2
context produce), expanded JSON-LD and flattened JSON-LD into one shape: a
list of expanded node objects ({"@id", "@type": [...], property IRI: [values]}).
It never fetches anything: remote contexts are looked up in the ``contexts``
mapping the caller passes (the shell passes the ``vocab/`` files as a
:class:`~connector.policy.contexts.PolicyContexts`); anything else is an error.

Supported: term definitions, prefixes and compact IRIs, @vocab, keyword
aliases (uid -> @id), @type coercion (@id, @vocab, datatypes), a term's
@language, @container @list/@set, @import, nested @context, @graph,
@value/@type/@language. Not supported, and refused with a PolicyError naming
the path (never expanded some other way): @reverse, @nest, @included, @json,
type- and property-scoped contexts (a term definition with @context; the DSP
2025-1 context is read flat, see contexts.flatten_scoped), @container other
than @list/@set, @base, a context's default @language/@direction,
@propagate. @protected is accepted and not enforced.

Departures from JSON-LD, on purpose:
* a bare word in an @vocab-typed position that no term defines (DSP 2025-1
  writes "leftOperand": "dateTime" without any @vocab) is kept as the bare
  word; the compiler resolves it against the ODRL and station vocabularies;
* undeclared prefixes odrl:, hks:, dpv:, pd:, idsc:, ... are expanded anyway
  (vocab.WELL_KNOWN_PREFIXES);
* a key that is neither a term, a compact IRI nor an absolute IRI is an error
  instead of being dropped silently (it is nearly always a typo).
"""

from __future__ import annotations

from typing import Any, Mapping

from .contexts import PolicyContexts
from .errors import PolicyError
from .vocab import WELL_KNOWN_PREFIXES, suggest

_KEYWORDS = {
    "@id", "@type", "@value", "@language", "@list", "@set", "@graph", "@context", "@index",
    "@direction", "@vocab", "@base", "@version", "@protected", "@import", "@propagate",
    "@container", "@reverse", "@nest", "@included", "@json", "@none", "@prefix",
}


#: what a term definition may hold (anything else, e.g. @reverse, @context, @nest, @index, is refused)
_TERM_KEYS = frozenset({"@id", "@type", "@container", "@language", "@protected", "@prefix"})
#: keywords a context may hold (@base, a default @language or @direction, @propagate are refused)
_CONTEXT_KEYWORDS = frozenset({"@vocab", "@import", "@version", "@protected"})
#: keywords a node object may hold (@reverse, @nest, @included and the rest are refused)
_NODE_KEYWORDS = frozenset({"@id", "@type", "@value", "@language", "@direction", "@index", "@list", "@set",
                            "@graph", "@context"})
_UNSUPPORTED = "is not in the JSON-LD subset the policy engine expands (connector/policy/README.md)"


class _Term:
    __slots__ = ("iri", "type", "container", "language")

    def __init__(self, iri: str | None, type_: str | None = None, container: frozenset = frozenset(),
                 language: str | None = None):
        self.iri = iri
        self.type = type_
        self.container = container
        self.language = language


class ActiveContext:
    __slots__ = ("terms", "vocab")

    def __init__(self, terms: dict[str, _Term] | None = None, vocab: str | None = None):
        self.terms = terms or {}
        self.vocab = vocab


class Expander:
    def __init__(self, contexts: Mapping[str, Any] | None = None):
        self.docs: Mapping[str, Any] = contexts if contexts is not None else {}
        # the processed forms of a PolicyContexts' own documents (they never change), by id()
        if isinstance(contexts, PolicyContexts):
            self._cacheable, self._processed = contexts.owned_ids, contexts.processed
        else:
            self._cacheable, self._processed = frozenset(), {}
        self.errors: list[tuple[str, str]] = []

    # ---------------------------------------------------------------- contexts
    def _load(self, url: str, path: str) -> Any:
        doc = self.docs.get(url)
        if doc is None:
            doc = self.docs.get(url.rstrip("/"))
        if doc is None:
            raise PolicyError(
                [(path, f"unknown remote context {url!r}: the policy engine never fetches; "
                        f"pass the document in contexts={{{url!r}: ...}}")]
            )
        if isinstance(doc, Mapping) and "@context" in doc:
            doc = doc["@context"]
        return doc

    def process(self, active: ActiveContext, local: Any, path: str, depth: int = 0) -> ActiveContext:
        if depth > 16:
            raise PolicyError([(path, "context nesting too deep (a context imports itself?)")])
        if local is None:
            return ActiveContext()
        if isinstance(local, list):
            for item in local:
                active = self.process(active, item, path, depth + 1)
            return active
        if isinstance(local, str):
            return self.process(active, self._load(local, path), path, depth + 1)
        if id(local) in self._cacheable and not active.terms and active.vocab is None:
            # a shared context applied to an empty active context: processed once per process
            hit = self._processed.get(id(local))
            if hit is None:
                hit = self._processed[id(local)] = self._process_dict(active, local, path, depth)
            return hit
        return self._process_dict(active, local, path, depth)

    def _process_dict(self, active: ActiveContext, local: Any, path: str, depth: int) -> ActiveContext:
        if not isinstance(local, Mapping):
            raise PolicyError([(path, f"@context must be an object, a string or a list, not {type(local).__name__}")])
        if "@import" in local:
            imported = self._load(local["@import"], path)
            merged = dict(imported)
            merged.update({k: v for k, v in local.items() if k != "@import"})
            local = merged
        unsupported = [k for k in local if k.startswith("@") and k not in _CONTEXT_KEYWORDS]
        if unsupported:
            raise PolicyError([(path, f"{unsupported[0]} in a @context {_UNSUPPORTED}")])
        new = ActiveContext(dict(active.terms), active.vocab)
        if "@vocab" in local:
            v = local["@vocab"]
            new.vocab = None if v is None else self.expand_iri(new, v, vocab=True)
        defined: dict[str, bool] = {}
        for term in local:
            if not term.startswith("@"):
                self._define(new, local, term, defined, path)
        return new

    def _define(self, ctx: ActiveContext, local: Mapping, term: str, defined: dict, path: str) -> None:
        if defined.get(term):
            return
        if term in defined:  # cycle
            raise PolicyError([(path, f"cyclic IRI mapping for term {term!r} in @context")])
        defined[term] = False
        value = local[term]
        if value is None:
            ctx.terms[term] = _Term(None)
            defined[term] = True
            return
        if isinstance(value, str):
            value = {"@id": value}
        if not isinstance(value, Mapping):
            raise PolicyError([(path, f"bad definition for term {term!r} in @context")])
        unsupported = [k for k in value if k not in _TERM_KEYS]
        if unsupported:
            raise PolicyError([(path, f"{unsupported[0]} in the definition of term {term!r} {_UNSUPPORTED}")])
        iri_src = value.get("@id")
        if iri_src is not None:
            iri = iri_src if iri_src in _KEYWORDS else self.expand_iri(ctx, iri_src, vocab=True, local=local, defined=defined, path=path)
        elif ":" in term:
            prefix, suffix = term.split(":", 1)
            if prefix in local and prefix != term and not defined.get(prefix):
                self._define(ctx, local, prefix, defined, path)
            pt = ctx.terms.get(prefix)
            if pt is not None and pt.iri and not suffix.startswith("//"):
                iri = pt.iri + suffix
            else:
                iri = self.expand_iri(ctx, term, vocab=False, path=path)
        elif ctx.vocab:
            iri = ctx.vocab + term
        else:
            iri = None
        t = value.get("@type")
        if t is not None and t not in ("@id", "@vocab", "@json", "@none"):
            t = self.expand_iri(ctx, t, vocab=True, local=local, defined=defined, path=path)
        if t == "@json":
            raise PolicyError([(path, f"@type @json (term {term!r}) {_UNSUPPORTED}")])
        c = value.get("@container")
        container = frozenset(c if isinstance(c, list) else [c]) if c else frozenset()
        if not container <= {"@list", "@set"}:
            raise PolicyError([(path, f"@container {c!r} (term {term!r}) {_UNSUPPORTED}: only @list and @set")])
        language = value.get("@language")
        ctx.terms[term] = _Term(iri, t, container, language if isinstance(language, str) else None)
        defined[term] = True

    # -------------------------------------------------------------------- IRIs
    def expand_iri(self, ctx: ActiveContext, value: str, *, vocab: bool, local=None, defined=None, path: str = "") -> str:
        if not isinstance(value, str):
            raise PolicyError([(path, f"expected an IRI string, got {value!r}")])
        if value.startswith("@"):
            return value
        if local is not None and value in local and not defined.get(value):
            self._define(ctx, local, value, defined, path)
        if vocab:
            t = ctx.terms.get(value)
            if t is not None and t.iri is not None:
                return t.iri
        i = value.find(":")
        if i > 0:
            prefix, suffix = value[:i], value[i + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return value
            if local is not None and prefix in local and not defined.get(prefix):
                self._define(ctx, local, prefix, defined, path)
            t = ctx.terms.get(prefix)
            if t is not None and t.iri is not None and not t.iri.startswith("@"):
                return t.iri + suffix
            ns = WELL_KNOWN_PREFIXES.get(prefix)
            if ns is not None:
                return ns + suffix
            return value
        if vocab and ctx.vocab:
            return ctx.vocab + value
        return value

    def _expand_key(self, ctx: ActiveContext, key: str) -> str | None:
        t = ctx.terms.get(key)
        if t is not None:
            return t.iri
        if key.startswith("@"):
            return key if key in _KEYWORDS else None
        if ":" in key:
            return self.expand_iri(ctx, key, vocab=True)
        if ctx.vocab:
            return ctx.vocab + key
        return None

    # ------------------------------------------------------------------- nodes
    def expand_document(self, doc: Any, context: Any = None) -> list[dict]:
        ctx = ActiveContext()
        if context is not None:
            ctx = self.process(ctx, context, "@context")
        items = doc if isinstance(doc, list) else [doc]
        out: list[dict] = []
        for i, item in enumerate(items):
            p = f"[{i}]" if isinstance(doc, list) else ""
            if not isinstance(item, Mapping):
                raise PolicyError([(p or "(document)", f"expected a JSON object, got {type(item).__name__}")])
            node = self.expand_object(ctx, item, p)
            if node is None:
                continue
            if "@graph" in node and len(node) <= 2:
                out.extend(n for n in node["@graph"] if isinstance(n, dict))
            else:
                out.append(node)
        return out

    def expand_object(self, ctx: ActiveContext, obj: Mapping, path: str) -> dict | None:
        if "@context" in obj:
            ctx = self.process(ctx, obj["@context"], _join(path, "@context"))
        result: dict[str, Any] = {}
        for key, value in obj.items():
            if key == "@context":
                continue
            ek = self._expand_key(ctx, key)
            kpath = _join(path, key)
            if ek is None:
                t = ctx.terms.get(key)
                if t is not None and t.iri is None:
                    continue  # explicitly nulled term
                self.errors.append((kpath, f"unknown term {key!r}: not defined by the @context and not an IRI"
                                           f"{suggest(key, [k for k in ctx.terms if not k.startswith('@')])}"))
                continue
            if ek == "@id":
                if not isinstance(value, str):
                    self.errors.append((kpath, f"@id must be a string, got {value!r}"))
                    continue
                result["@id"] = self.expand_iri(ctx, value, vocab=False, path=kpath)
            elif ek == "@type":
                vals = value if isinstance(value, list) else [value]
                result["@type"] = [self.expand_iri(ctx, v, vocab=True, path=kpath) for v in vals if isinstance(v, str)]
            elif ek == "@value":
                result["@value"] = value
            elif ek in ("@language", "@direction", "@index"):
                result[ek] = value
            elif ek == "@list":
                vals = value if isinstance(value, list) else [value]
                result["@list"] = [x for i, v in enumerate(vals) for x in self._expand_value(ctx, None, v, f"{kpath}[{i}]")]
            elif ek == "@set":
                vals = value if isinstance(value, list) else [value]
                return {"@set": [x for i, v in enumerate(vals) for x in self._expand_value(ctx, None, v, f"{kpath}[{i}]")]}
            elif ek == "@graph":
                vals = value if isinstance(value, list) else [value]
                result["@graph"] = [self.expand_object(ctx, v, f"{kpath}[{i}]") for i, v in enumerate(vals) if isinstance(v, Mapping)]
            elif ek.startswith("@"):
                if ek not in _NODE_KEYWORDS:
                    self.errors.append((kpath, f"{ek} {_UNSUPPORTED}"))
                continue
            else:
                term = ctx.terms.get(key)
                vals = self._expand_values(ctx, term, value, kpath)
                if vals:
                    result.setdefault(ek, []).extend(vals)
        if "@value" in result and "@type" in result:
            t = result["@type"]
            result["@type"] = t[0] if t else None
        return result

    def _expand_values(self, ctx: ActiveContext, term: _Term | None, value: Any, path: str) -> list:
        if isinstance(value, list):
            out = []
            for i, v in enumerate(value):
                out.extend(self._expand_value(ctx, term, v, f"{path}[{i}]"))
            if term is not None and "@list" in term.container:
                return [{"@list": out}]
            return out
        vals = self._expand_value(ctx, term, value, path)
        if term is not None and "@list" in term.container:
            return [{"@list": vals}]
        return vals

    def _expand_value(self, ctx: ActiveContext, term: _Term | None, v: Any, path: str) -> list:
        if v is None:
            return []
        if isinstance(v, Mapping):
            if "@value" in v or any(self._expand_key(ctx, k) == "@value" for k in v if not k.startswith("@")):
                out = {}
                for k, x in v.items():
                    ek = self._expand_key(ctx, k) if not k.startswith("@") else k
                    if ek == "@type" and isinstance(x, str):
                        out["@type"] = self.expand_iri(ctx, x, vocab=True, path=path)
                    elif ek in ("@value", "@language", "@direction", "@index"):
                        out[ek] = x
                    elif ek == "@context":
                        continue
                    else:
                        self.errors.append((_join(path, k), f"unexpected key {k!r} in a value object"))
                return [out]
            node = self.expand_object(ctx, v, path)
            if node is None:
                return []
            if "@set" in node:
                return node["@set"]
            return [node]
        if isinstance(v, list):
            out = []
            for i, x in enumerate(v):
                out.extend(self._expand_value(ctx, term, x, f"{path}[{i}]"))
            return [{"@list": out}]
        if isinstance(v, str) and term is not None:
            if term.type == "@id":
                return [{"@id": self.expand_iri(ctx, v, vocab=False, path=path)}]
            if term.type == "@vocab":
                return [{"@id": self.expand_iri(ctx, v, vocab=True, path=path)}]
            if term.type not in (None, "@none"):
                return [{"@value": v, "@type": term.type}]
            if term.language is not None and term.type is None:
                return [{"@value": v, "@language": term.language}]
        return [{"@value": v}]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def expand(doc: Any, *, context: Any = None, contexts: Mapping[str, Any] | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """Expand a JSON-LD document. Returns (nodes, errors)."""
    ex = Expander(contexts)
    nodes = ex.expand_document(doc, context)
    return nodes, ex.errors
