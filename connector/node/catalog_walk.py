"""A consumer reading a provider's catalog page by page (issue 16): the management API's
`POST /api/v1/catalog/request` follows the `Link: <...>; rel="next"` of each page (DSP 2025-1
catalog binding) and merges the datasets, or answers one page with the links to its neighbours.

A link is the provider's, so it is checked before our token goes there: it must be the same
catalog endpoint (scheme, host, port and path of `<base>/catalog/request`), only its query may
differ. A walk is bounded in pages and datasets, and stops at a link it has already followed."""
from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from .peers import PeerError

Json = dict[str, Any]
MAX_WALK_PAGES = 1000
MAX_WALK_DATASETS = 200_000
MAX_LINK_CHARS = 2048


def same_endpoint(link: str, endpoint: str) -> str:
    """`link` resolved against the catalog endpoint, if it is that endpoint; PeerError otherwise."""
    if not isinstance(link, str) or len(link) > MAX_LINK_CHARS:
        raise PeerError("the catalog's page link is not a URL of at most 2048 characters")
    url = urljoin(endpoint, link)
    a, b = urlsplit(url), urlsplit(endpoint)
    if (a.scheme, a.netloc, a.path) != (b.scheme, b.netloc, b.path) or a.fragment:
        raise PeerError("the catalog's page link is not the provider's catalog endpoint: not followed")
    return url


def _datasets(catalog: Json) -> list:
    found = catalog.get("dataset", catalog.get("dcat:dataset", []))
    return found if isinstance(found, list) else [found]


async def read_catalog(peers: Any, base: str, version: str, recipient: str, *, page_size: int | None = None,
                       continuation: str | None = None, walk: bool = True) -> Json:
    """{"catalog", "pages", "next", "previous"}: every page merged (`walk`) or one page."""
    endpoint = f"{base}/catalog/request"
    if continuation is not None:
        url = same_endpoint(continuation, endpoint)
    else:
        url = endpoint + (f"?pageSize={page_size}" if page_size else "")
    message = {"@type": "CatalogRequestMessage"}
    catalog, links = await peers.request_with_links("POST", url, version, message, recipient=recipient)
    first_links = links
    merged = list(_datasets(catalog))
    pages, seen = 1, {url}
    while walk and links.get("next") and pages < MAX_WALK_PAGES and len(merged) < MAX_WALK_DATASETS:
        url = same_endpoint(links["next"], endpoint)
        if url in seen:
            raise PeerError("the catalog's next-page link leads back to a page already read: not followed")
        seen.add(url)
        page, links = await peers.request_with_links("POST", url, version, message, recipient=recipient)
        merged.extend(_datasets(page))
        pages += 1
    if walk and pages > 1:
        key = "dcat:dataset" if "dcat:dataset" in catalog and "dataset" not in catalog else "dataset"
        catalog = {**catalog, key: merged}
    following = links.get("next")
    before = first_links if walk else links
    previous = before.get("previous") or before.get("prev")  # the binding says "previous"; RFC 8288 peers "prev"
    return {"catalog": catalog, "pages": pages,
            "next": same_endpoint(following, endpoint) if following else None,
            "previous": same_endpoint(previous, endpoint) if previous else None}
