"""The filing pack's pure parts: the authority per party, the deadline in working days of each
side's calendar (the maintained `holidays` package), the status, and the printable HTML."""
from datetime import date

import pytest

from connector.compliance import filing as fil

RECORD = {
    "@type": "hks:CrossBorderRecord", "agreementId": "urn:uuid:a1", "negotiationId": "urn:uuid:n1", "role": "provider",
    "assetId": "visits", "policyUid": "urn:uuid:a1", "agreedAt": "2026-09-28T10:00:00Z", "contractEffectiveOn": None,
    "regime": "GBA Standard Contract", "legalBasis": "dpv:Contract", "retention": "P1Y",
    "provider": {"participantId": "urn:p", "organisation": "Pearl River <Medical> Centre", "jurisdiction": "CN-GD-GZ",
                 "verifiedBy": "station"},
    "consumer": {"participantId": "urn:h", "organisation": "Harbour Lab", "jurisdiction": "HK", "verifiedBy": "station"},
    "categories": ["pd:Name", "pd:MedicalHealth"], "purposes": ["hks:MedicalResearch"], "recipientJurisdictions": ["HK"],
    "consentRequired": False, "consentEvidence": None, "pipia": {"reference": "PIPIA-1", "date": "2026-09-01"},
}


def test_ten_working_days_skip_each_sides_public_holidays():
    # 28 Sep 2026: the mainland's National Day week (1-7 Oct) and Hong Kong's 1 Oct holiday
    assert fil.add_working_days(date(2026, 9, 28), 10, "CN") == date(2026, 10, 16)
    assert fil.add_working_days(date(2026, 9, 28), 10, "HK") == date(2026, 10, 13)
    # Christmas and New Year in Hong Kong; Saturdays are never counted there
    assert fil.add_working_days(date(2026, 12, 18), 10, "HK") == date(2027, 1, 5)
    assert not fil.is_working_day(date(2026, 10, 10), "HK")


def test_a_weekend_day_the_mainland_makes_a_working_day_counts_there_only():
    made_working = date(2026, 2, 14)  # a Saturday worked before the 2026 Spring Festival
    assert fil.is_working_day(made_working, "CN") and not fil.is_working_day(made_working, "HK")


@pytest.mark.parametrize("today,filed,status", [
    (date(2026, 10, 5), False, "open"), (date(2026, 10, 13), False, "due"), (date(2026, 10, 16), False, "due"),
    (date(2026, 10, 19), False, "overdue"), (date(2026, 10, 19), True, "filed")])
def test_status_due_within_three_working_days_then_overdue(today, filed, status):
    assert fil.status(date(2026, 10, 16), today, filed, "CN") == status


def test_each_party_files_with_its_own_authority_by_its_own_deadline():
    p = fil.pack(RECORD, date(2026, 10, 14))
    provider, consumer = p["filings"]
    assert provider["authority"]["en"].startswith("Cyberspace Administration of Guangdong")
    assert provider["authority"]["zh-Hans"] == "广东省互联网信息办公室" and provider["deadline"] == "2026-10-16"
    assert provider["status"] == "due" and consumer["status"] == "overdue"
    assert consumer["authority"]["en"].startswith("Digital Policy Office") and consumer["deadline"] == "2026-10-13"
    assert p["recipients"] == [{"participantId": "urn:h", "organisation": "Harbour Lab", "jurisdiction": "HK"}]
    assert p["categories"] == RECORD["categories"] and p["purposes"] == RECORD["purposes"]
    filed = fil.pack(RECORD, date(2026, 10, 20), {"filedOn": "2026-10-15", "reference": "GD-2026-1"})
    assert filed["filings"][0]["status"] == "filed" and filed["filings"][0]["reference"] == "GD-2026-1"


def test_the_contracts_own_effective_date_moves_the_deadline():
    p = fil.pack({**RECORD, "contractEffectiveOn": "2026-12-18"}, date(2026, 12, 20))
    assert p["contract"]["effectiveOn"] == "2026-12-18" and p["filings"][1]["deadline"] == "2027-01-05"


def test_a_party_outside_the_gba_is_not_eligible():
    p = fil.pack({**RECORD, "consumer": {**RECORD["consumer"], "jurisdiction": "SG"}}, date(2026, 10, 1))
    assert p["filings"][1]["eligible"] is False and p["filings"][1]["authority"] is None


@pytest.mark.parametrize("lang,needles", [
    ("en", ["GBA Standard Contract: filing", "Digital Policy Office", "2026-10-13"]),
    ("zh-Hans", ["备案机关", "广东省互联网信息办公室", "香港特别行政区政府数字政策办公室"]),
    ("zh-Hant", ["備案機關", "香港特別行政區政府數字政策辦公室"])])
def test_the_printable_html_in_english_and_chinese_escapes_what_peers_wrote(lang, needles):
    page = fil.render_html(fil.pack(RECORD, date(2026, 10, 1)), lang)
    assert page.startswith("<!DOCTYPE html>") and f'lang="{lang}"' in page
    assert all(n in page for n in needles)
    assert "Pearl River &lt;Medical&gt; Centre" in page and "<Medical>" not in page


def test_an_unknown_language_is_refused():
    with pytest.raises(fil.FilingError, match="lang must be one of"):
        fil.render_html(fil.pack(RECORD, date(2026, 10, 1)), "fr")
