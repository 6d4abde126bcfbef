"""`connector catalog DIR --address URL`: a provider's whole catalog read through the node's own
management API, one page at a time (each page's `next` link is followed until there is none), so
a catalog of any size is listed in bounded memory."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

import httpx

from . import config as config_mod
from .errors import SetupError


class CatalogCliError(SetupError):
    pass


def pages(directory: Path, address: str, participant_id: Optional[str], page_size: int,
          version: Optional[str] = None) -> Iterator[dict]:
    """Each page's answer of POST /api/v1/catalog/request, following `next`."""
    settings = config_mod.load(directory)
    verify: bool | str = str(directory / "station-ca.crt") if settings.tls_enabled else True
    query: dict = {"counterPartyAddress": address, "pageSize": page_size, "all": False}
    if participant_id:
        query["counterPartyId"] = participant_id
    if version:
        query["dspVersion"] = version
    url = settings.node.public_url.rstrip("/") + "/api/v1/catalog/request"
    with httpx.Client(headers={"X-Api-Key": settings.management_api_key}, timeout=60, verify=verify) as client:
        for _ in range(1_000_000):
            resp = client.post(url, json=query)
            if resp.status_code != 200:
                try:
                    reason = resp.json().get("error", resp.text)
                except ValueError:
                    reason = resp.text
                raise CatalogCliError(f"the node answered {resp.status_code}: {str(reason)[:200]}")
            page = resp.json()
            yield page
            if not page.get("next"):
                return
            query["continuation"] = page["next"]


def datasets(page: dict) -> list:
    catalog = page.get("catalog") or {}
    found = catalog.get("dataset", catalog.get("dcat:dataset", []))
    return found if isinstance(found, list) else [found]


def print_catalog(directory: Path, address: str, participant_id: Optional[str], page_size: int,
                  json_lines: bool, version: Optional[str], echo) -> int:  # noqa: ANN001
    count = 0
    for page in pages(directory, address, participant_id, page_size, version):
        for dataset in datasets(page):
            count += 1
            if json_lines:
                echo(json.dumps(dataset))
            else:
                offers = dataset.get("hasPolicy", dataset.get("odrl:hasPolicy", []))
                offers = offers if isinstance(offers, list) else [offers]
                echo(f"{dataset.get('@id')}\t" + ", ".join(str(o.get("@id")) for o in offers if isinstance(o, dict)))
    return count
