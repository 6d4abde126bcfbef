"""Attack: a participant logs entries time-stamped years in the past (or far ahead), rewriting
when its events happened. Refused: the clearing house accepts an entry only if its timestamp is
at most [clearinghouse] max_entry_age_seconds (7 days) before its own clock and at most
max_clock_skew_seconds (5 minutes) after it; a node's entry delivered late, after an outage, is
still within the window (connector/clearinghouse/README.md explains the choice). A real
clearing-house process; nothing refused is appended."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from connector.clearinghouse.testing import ClearingHouseProcess, Participant

SECRET = "window-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory):
    ch = ClearingHouseProcess(Path(tmp_path_factory.mktemp("window")) / "ch", shared_secret=SECRET)
    pearl, harbour = Participant("urn:hks:participant:pearl", SECRET), Participant("urn:hks:participant:harbour", SECRET)
    ch.trust(pearl)
    ch.trust(harbour)
    ch.start()
    yield ch, pearl, harbour
    ch.stop()


def append(ch: ClearingHouseProcess, who: Participant, other: Participant, stamped: datetime) -> httpx.Response:
    return httpx.post(ch.url + "/entries", json={"jws": who.sign(who.entry(other, timestamp=stamped))},
                      headers=who.headers(), timeout=30)


@pytest.mark.parametrize("age", [timedelta(days=3 * 365), timedelta(days=7, hours=1), timedelta(days=10 * 365)])
def test_entry_stamped_long_ago_is_refused(log, age: timedelta) -> None:
    ch, pearl, harbour = log
    size = ch.size()
    resp = append(ch, pearl, harbour, datetime.now(timezone.utc) - age)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "StaleTimestamp"
    assert "more than 604800 s before the clearing house's clock" in body["error"]
    assert "max_entry_age_seconds" in body["error"]
    assert ch.size() == size


def test_entry_stamped_ahead_of_the_clock_is_refused(log) -> None:
    ch, pearl, harbour = log
    size = ch.size()
    resp = append(ch, pearl, harbour, datetime.now(timezone.utc) + timedelta(hours=1))
    assert resp.status_code == 400 and resp.json()["code"] == "FutureTimestamp", resp.text
    assert ch.size() == size


@pytest.mark.parametrize("late", [timedelta(0), timedelta(hours=20), timedelta(days=6, hours=23)])
def test_late_delivery_within_the_window_is_accepted(log, late: timedelta) -> None:
    """An entry a node signed at the event and could deliver only after an outage."""
    ch, pearl, harbour = log
    resp = append(ch, harbour, pearl, datetime.now(timezone.utc) - late)
    assert resp.status_code == 201, resp.text


def test_window_is_a_setting(tmp_path: Path) -> None:
    ch = ClearingHouseProcess(tmp_path / "ch", shared_secret=SECRET,
                              env={"CONNECTOR_CH_CLEARINGHOUSE_MAX_ENTRY_AGE_SECONDS": "3600"})
    pearl, harbour = Participant("urn:hks:participant:pearl", SECRET), Participant("urn:hks:participant:harbour", SECRET)
    ch.trust(pearl)
    ch.start()
    try:
        now = datetime.now(timezone.utc)
        refused = append(ch, pearl, harbour, now - timedelta(hours=2))
        assert refused.status_code == 400 and refused.json()["code"] == "StaleTimestamp", refused.text
        assert "more than 3600 s before" in refused.json()["error"]
        assert append(ch, pearl, harbour, now - timedelta(minutes=30)).status_code == 201
    finally:
        ch.stop()
