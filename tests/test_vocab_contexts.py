"""The project's own JSON-LD contexts (vocab/) must mean exactly what the official ones mean."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pyld import jsonld as pyld_jsonld
from pyld.context_resolver import ContextResolver

from connector.protocol.jsonld import (
    CONTEXT_2024_1,
    CONTEXT_2025_1,
    EDC_CONTEXT,
    ODRL_CONTEXT,
    ODRL_PROFILE_2025_1,
    JsonLdProcessor,
)
from connector.vocab import CONTEXT_FILES, load_contexts, vocab_dir

try:
    from support.schemas import SKIP_REASON, dsp_reference_dir, shared_dir
    from support.reference import cases
except ImportError:  # pragma: no cover - repo root on sys.path instead of tests/
    from tests.support.schemas import SKIP_REASON, dsp_reference_dir, shared_dir
    from tests.support.reference import cases

ODRL = "http://www.w3.org/ns/odrl/2/"

#: context URL -> official file, relative to <shared>/reference
OFFICIAL_FILES = {
    CONTEXT_2025_1: "dsp/dsp-2025-1/context.jsonld",
    ODRL_PROFILE_2025_1: "dsp/dsp-2025-1/odrl-profile.jsonld",
    CONTEXT_2024_1: "dsp/dsp-2024-1/context.json",
    ODRL_CONTEXT: "odrl/odrl-2.2/odrl.jsonld",
    EDC_CONTEXT: "dsp/edc-cached/dspace-edc-context-v1.jsonld",
}
#: deliberate repairs in vocab/odrl-2.2/odrl.jsonld (see vocab/README.md)
ODRL_REPAIRS = {"neq": ("odrl:neg", "odrl:neq"), "industry": ("odrl:industry:", "odrl:industry")}


def _official_available() -> bool:
    ref = shared_dir() / "reference"
    return all((ref / rel).is_file() for rel in OFFICIAL_FILES.values())


needs_shared = pytest.mark.needs_reference(*OFFICIAL_FILES.values(), "dsp/dsp-2025-1/example", "dsp/dsp-2024-1/example")


def _official_docs() -> dict[str, dict]:
    ref = shared_dir() / "reference"
    return {url: json.loads((ref / rel).read_text(encoding="utf-8")) for url, rel in OFFICIAL_FILES.items()}


def _official_expand(doc: dict, docs: dict[str, dict]) -> list:
    """Reference expansion: plain PyLD with a loader serving the official files.

    A fresh resolver cache per call, so PyLD's @import cache bug cannot carry over.
    """

    def loader(url, options=None):
        if url not in docs:
            raise KeyError(f"reference loader: unknown context {url}")
        return {
            "contextUrl": None,
            "documentUrl": url,
            "document": copy.deepcopy(docs[url]),
            "contentType": "application/ld+json",
        }

    options = {"documentLoader": loader, "base": None, "contextResolver": ContextResolver({}, loader)}
    return pyld_jsonld.expand(copy.deepcopy(doc), options)


def _context_urls(doc: dict) -> list:
    ctx = doc.get("@context")
    return [ctx] if isinstance(ctx, str) else list(ctx or [])


def _examples() -> list[Path]:
    """Official examples whose @context is made only of contexts we serve."""
    ref = dsp_reference_dir()
    files = sorted((ref / "dsp-2025-1" / "example").glob("*.json")) + sorted(
        (ref / "dsp-2024-1" / "example").glob("*.json")
    )
    out = []
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        urls = _context_urls(doc)
        # protocol-version.json has no @context; the DID service examples use the DID context
        if urls and all(isinstance(u, str) and u in CONTEXT_FILES for u in urls):
            out.append(path)
    return out


EXAMPLES = _examples() if _official_available() else []


@pytest.fixture(scope="module")
def processor() -> JsonLdProcessor:
    return JsonLdProcessor(load_contexts())


@pytest.fixture(scope="module")
def official_docs() -> dict[str, dict]:
    return _official_docs()


def test_vocab_dir_and_load_contexts():
    assert (vocab_dir() / "README.md").is_file()
    docs = load_contexts()
    assert set(docs) == {CONTEXT_2025_1, ODRL_PROFILE_2025_1, CONTEXT_2024_1, ODRL_CONTEXT, EDC_CONTEXT}
    assert all(isinstance(d.get("@context"), dict) for d in docs.values())
    assert load_contexts() is docs  # lru_cache
    readme = (vocab_dir() / "README.md").read_text(encoding="utf-8")
    for url in docs:
        assert url in readme, f"vocab/README.md does not list {url}"


def test_odrl_context_maps_neq_to_odrl_neq(processor):
    doc = {
        "@context": ODRL_CONTEXT,
        "@type": "Constraint",
        "leftOperand": "industry",
        "operator": "neq",
        "rightOperand": "mining",
    }
    (node,) = processor.expand(doc)
    assert node[ODRL + "operator"] == [{"@id": ODRL + "neq"}]
    assert node[ODRL + "leftOperand"] == [{"@id": ODRL + "industry"}]
    assert load_contexts()[ODRL_CONTEXT]["@context"]["neq"] == "odrl:neq"


def test_dsp_2025_profile_maps_neq_to_odrl_neq():
    assert load_contexts()[ODRL_PROFILE_2025_1]["@context"]["neq"] == "odrl:neq"


@needs_shared
def test_vocab_files_have_the_official_definitions(official_docs):
    ours = load_contexts()
    for url, official in official_docs.items():
        mine = copy.deepcopy(ours[url])
        if url == ODRL_CONTEXT:
            for term, (upstream, fixed) in ODRL_REPAIRS.items():
                assert official["@context"][term] == upstream, f"upstream ODRL {term} changed; update vocab/README.md"
                assert mine["@context"][term] == fixed
                mine["@context"][term] = upstream
        assert mine == official, f"vocab for {url} differs from the official definitions"


@needs_shared
def test_upstream_odrl_neq_typo_is_really_different(official_docs):
    doc = {"@context": ODRL_CONTEXT, "@type": "Constraint", "operator": "neq"}
    (node,) = _official_expand(doc, official_docs)
    assert node[ODRL + "operator"] == [{"@id": ODRL + "neg"}]


@needs_shared
def test_examples_were_collected():
    # guards against silently testing nothing: 24 usable 2025-1 + 23 2024-1 examples
    assert len(EXAMPLES) >= 45


@needs_shared
@pytest.mark.parametrize("path", cases(EXAMPLES, *OFFICIAL_FILES.values()), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_example_expands_identically(path, processor, official_docs):
    doc = json.loads(path.read_text(encoding="utf-8"))
    expected = _official_expand(doc, official_docs)
    assert expected, "reference expansion is empty"
    assert processor.expand(doc) == expected


# ---------------------------------------------------------------------------
# vocab/ is the only source: every context the code uses is its vocab/ file
# ---------------------------------------------------------------------------


def _vocab_file(rel: str) -> dict:
    return json.loads((vocab_dir() / rel).read_text(encoding="utf-8"))


def test_every_context_the_dsp_layer_uses_equals_its_vocab_file():
    docs = load_contexts()
    assert set(docs) == set(CONTEXT_FILES)
    for url, rel in CONTEXT_FILES.items():
        assert docs[url] == _vocab_file(rel), url


def test_every_context_the_policy_engine_uses_equals_its_vocab_file():
    from connector.policy.contexts import (
        DSP_2025_1_CONTEXT_URL,
        ODRL_CONTEXT_URL,
        POLICY_CONTEXT_URLS,
        flatten_scoped,
    )
    from connector.vocab import POLICY_CONTEXT_FILES, policy_contexts

    table = policy_contexts()
    assert set(POLICY_CONTEXT_FILES) == set(POLICY_CONTEXT_URLS)
    raw = {url: _vocab_file(rel) for url, rel in POLICY_CONTEXT_FILES.items()}
    for url in POLICY_CONTEXT_URLS:
        if url == DSP_2025_1_CONTEXT_URL:
            # read flat (the expander does not apply type-scoped contexts): derived from the file, nothing added
            assert table[url] == flatten_scoped(raw[url]["@context"], raw)
        else:
            assert table[url] == raw[url], url
    # the other names of the ODRL context are that same file
    extra = set(table) - set(POLICY_CONTEXT_URLS)
    assert extra == {"https://www.w3.org/ns/odrl.jsonld", "http://www.w3.org/ns/odrl/2/"}
    for url in extra:
        assert table[url] == raw[ODRL_CONTEXT_URL]


def test_the_flat_dsp_2025_1_context_defines_every_term_of_the_file_and_its_profile_as_they_are():
    from connector.policy.contexts import DSP_2025_1_CONTEXT_URL, DSP_2025_1_ODRL_PROFILE_URL
    from connector.vocab import policy_contexts

    flat = policy_contexts()[DSP_2025_1_CONTEXT_URL]
    source = _vocab_file("dsp-2025-1/context.jsonld")["@context"]
    profile = _vocab_file("dsp-2025-1/odrl-profile.jsonld")["@context"]
    for term, value in profile.items():
        if not term.startswith("@"):
            assert flat[term] == value, term
    for term, value in source.items():
        if term == "@protected":
            continue
        if isinstance(value, dict) and "@context" in value:
            assert flat[term] in (value["@id"], {k: v for k, v in value.items() if k != "@context"})
            for inner, definition in value["@context"].items():
                if not inner.startswith("@"):
                    # the first scoped definition of a term wins; they differ only in @type coercion of pids
                    assert inner in flat
        else:
            assert flat[term] == value, term


def test_no_module_of_the_package_embeds_a_json_ld_context():
    """A second copy of a vocab/ context in the code is what this layout forbids."""
    import connector

    package = Path(connector.__file__).resolve().parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        # every vocab context maps these prefixes; a module holding a copy would carry the mapping
        assert '"odrl": "http://www.w3.org/ns/odrl/2/"' not in text, path
        assert '"dspace": "https://w3id.org/dspace/' not in text, path


# ---------------------------------------------------------------------------
# DPV: vocab/dpv/dpv-2.2.json is the source; policy/_dpv.py is rendered from it
# ---------------------------------------------------------------------------

_REPO = Path(__file__).resolve().parents[1]


def test_the_policy_engines_dpv_tables_are_the_vocab_file():
    from connector.policy._dpv import PERSONAL_DATA, PURPOSES

    data = _vocab_file("dpv/dpv-2.2.json")
    assert PERSONAL_DATA == {k: (tuple(b), label, special) for k, (b, label, special) in data["personal_data"].items()}
    assert PURPOSES == {k: (tuple(b), label) for k, (b, label) in data["purposes"].items()}
    # and the module is exactly what the script renders (nothing edited by hand)
    import importlib.util

    spec = importlib.util.spec_from_file_location("dpv_extract", _REPO / "scripts" / "dpv_extract.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (_REPO / "connector" / "policy" / "_dpv.py").read_text(encoding="utf-8") == script.render_python(data)


@pytest.mark.needs_reference("ids/dpv/dpv-2.2.ttl", "ids/dpv/pd-2.2.ttl")
def test_the_dpv_file_is_what_the_script_makes_of_the_official_dpv_files():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dpv_extract", _REPO / "scripts" / "dpv_extract.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ref = shared_dir() / "reference" / "ids" / "dpv"
    assert script.main([str(ref / "dpv-2.2.ttl"), str(ref / "pd-2.2.ttl"), "--check",
                        "-o", str(vocab_dir() / "dpv" / "dpv-2.2.json")]) == 0
