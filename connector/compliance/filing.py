"""The filing pack of a GBA Standard Contract (pure: today is passed in).

The signed contract is filed within 10 working days of taking effect: by the mainland party with
the Guangdong cyberspace authority, by the Hong Kong party with the Digital Policy Office
(../shared/reference/ids/NOTES.md §5). Working days are Monday to Friday except the public holidays
of the filing party's side, from the maintained `holidays` package (HK; for the mainland CN,
which also knows the weekend days the State Council makes working days).
"""
from __future__ import annotations

import html
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import holidays

from ..policy.taxonomy import MAINLAND_GBA_CITIES
from ..errors import ComplianceError

Json = dict[str, Any]
WORKING_DAYS_TO_FILE = 10
DUE_SOON = 3  # working days: a filing due within this many shows in /metrics, the API and the log

AUTHORITIES: dict[str, Json] = {
    "CN": {"calendar": "CN", "en": "Cyberspace Administration of Guangdong Province (Guangdong Cyberspace Affairs Office)",
           "zh-Hans": "广东省互联网信息办公室", "zh-Hant": "廣東省互聯網信息辦公室"},
    "HK": {"calendar": "HK", "en": "Digital Policy Office, Government of the Hong Kong Special Administrative Region",
           "zh-Hans": "香港特别行政区政府数字政策办公室", "zh-Hant": "香港特別行政區政府數字政策辦公室"},
}


class FilingError(ComplianceError, ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def side_of(jurisdiction: str | None) -> str | None:
    """'HK', 'CN' (one of the nine mainland GBA cities) or None (not a party the contract is open to)."""
    if jurisdiction == "HK":
        return "HK"
    if jurisdiction in MAINLAND_GBA_CITIES:
        return "CN"
    return None


@lru_cache(maxsize=64)
def _calendar(code: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(code, years=year)


def is_working_day(day: date, code: str) -> bool:
    """Monday to Friday except public holidays; on the mainland also the weekend days made working
    days (调休), which the CN calendar knows. (The package's HK calendar counts Saturday as a working
    day; government offices, where the filing goes, are closed on Saturdays.)"""
    cal = _calendar(code, day.year)
    if code == "HK":
        return day.weekday() < 5 and day not in cal
    return bool(cal.is_working_day(day))


def add_working_days(start: date, n: int, code: str) -> date:
    """The n-th working day after `start` (start itself not counted)."""
    day, left = start, n
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day, code):
            left -= 1
    return day


def working_days_until(today: date, due: date, code: str) -> int:
    """Working days after `today` up to and including `due` (0 when due is today or past)."""
    n, day = 0, today
    while day < due:
        day += timedelta(days=1)
        if is_working_day(day, code):
            n += 1
    return n


def status(due: date, today: date, filed: bool, code: str) -> str:
    if filed:
        return "filed"
    if today > due:
        return "overdue"
    return "due" if working_days_until(today, due, code) <= DUE_SOON else "open"


def effective_date(record: Json) -> date:
    return date.fromisoformat(record.get("contractEffectiveOn") or record["agreedAt"][:10])


def party_filing(record: Json, role: str, today: date, filed: Json | None = None) -> Json:
    """What the party in `role` (provider | consumer) files, with its authority and deadline."""
    p = record[role]
    side = side_of(p["jurisdiction"])
    if side is None:
        return {"role": role, "participantId": p["participantId"], "organisation": p["organisation"],
                "jurisdiction": p["jurisdiction"], "authority": None, "eligible": False,
                "note": "the GBA Standard Contract is open to parties in Hong Kong or the nine mainland GBA cities only"}
    auth = AUTHORITIES[side]
    effective = effective_date(record)
    due = add_working_days(effective, WORKING_DAYS_TO_FILE, auth["calendar"])
    out = {"role": role, "participantId": p["participantId"], "organisation": p["organisation"],
           "jurisdiction": p["jurisdiction"], "eligible": True,
           "authority": {k: auth[k] for k in ("en", "zh-Hans", "zh-Hant")}, "calendar": auth["calendar"],
           "effectiveOn": effective.isoformat(), "deadline": due.isoformat(),
           "workingDays": WORKING_DAYS_TO_FILE,
           "status": status(due, today, bool(filed and filed.get("filedOn")), auth["calendar"]),
           "workingDaysLeft": working_days_until(today, due, auth["calendar"])}
    if filed and filed.get("filedOn"):
        out["filedOn"], out["reference"] = filed["filedOn"], filed["reference"]
    return out


def pack(record: Json, today: date, own_filing: Json | None = None) -> Json:
    """The filing pack: the contract's identifying details and what each party files."""
    own = record["role"]
    return {
        "@type": "hks:GbaStandardContractFiling", "agreementId": record["agreementId"],
        "contract": {"regime": record["regime"], "agreementId": record["agreementId"],
                     "negotiationId": record["negotiationId"], "policyUid": record["policyUid"],
                     "assetId": record["assetId"], "agreedAt": record["agreedAt"],
                     "effectiveOn": effective_date(record).isoformat()},
        "provider": record["provider"], "consumer": record["consumer"],
        "categories": record["categories"], "purposes": record["purposes"],
        "recipients": [{"participantId": record["consumer"]["participantId"],
                        "organisation": record["consumer"]["organisation"],
                        "jurisdiction": record["consumer"]["jurisdiction"]}],
        "permittedRecipientJurisdictions": record.get("recipientJurisdictions", []),
        "retention": record["retention"], "legalBasis": record["legalBasis"],
        "pipia": record["pipia"], "consentEvidence": record["consentEvidence"],
        "filings": [party_filing(record, role, today, own_filing if role == own else None)
                    for role in ("provider", "consumer")],
        "preparedOn": today.isoformat(), "preparedBy": record[own]["participantId"],
    }


# ------------------------------------------------------------------ printable HTML

LABELS = {
    "en": {"title": "GBA Standard Contract: filing", "contract": "The contract", "agreement": "Agreement",
           "agreed": "Agreed", "effective": "Takes effect", "asset": "Dataset", "policy": "Policy",
           "parties": "Parties", "provider": "Personal information processor (provider)",
           "consumer": "Recipient (consumer)", "jurisdiction": "Jurisdiction", "participant": "Station participant id",
           "categories": "Categories of personal information", "purposes": "Purposes", "recipients": "Recipients",
           "retention": "Retention", "basis": "Legal basis", "pipia": "PIPIA (kept, not submitted)",
           "consent": "Consent evidence", "filings": "Filings", "authority": "Filing authority",
           "deadline": "Deadline", "status": "Status", "filed": "Filed on", "reference": "Reference",
           "none": "none", "prepared": "Prepared on", "working": "working days after the contract takes effect",
           "not_eligible": "not a party the contract is open to"},
    "zh-Hans": {"title": "粤港澳大湾区个人信息跨境流动标准合同：备案", "contract": "合同", "agreement": "协议",
                "agreed": "订立日期", "effective": "生效日期", "asset": "数据集", "policy": "策略",
                "parties": "当事人", "provider": "个人信息处理者（提供方）", "consumer": "接收方",
                "jurisdiction": "所在地", "participant": "站点参与方标识", "categories": "个人信息种类",
                "purposes": "处理目的", "recipients": "接收方", "retention": "保存期限", "basis": "合法性基础",
                "pipia": "个人信息保护影响评估（留存，无需提交）", "consent": "同意证明", "filings": "备案",
                "authority": "备案机关", "deadline": "备案期限", "status": "状态", "filed": "备案日期",
                "reference": "备案编号", "none": "无", "prepared": "编制日期", "working": "个工作日（自合同生效之日起）",
                "not_eligible": "不属于标准合同适用的当事人"},
    "zh-Hant": {"title": "粵港澳大灣區個人信息跨境流動標準合同：備案", "contract": "合同", "agreement": "協議",
                "agreed": "訂立日期", "effective": "生效日期", "asset": "數據集", "policy": "策略",
                "parties": "當事人", "provider": "個人信息處理者（提供方）", "consumer": "接收方",
                "jurisdiction": "所在地", "participant": "站點參與方標識", "categories": "個人信息種類",
                "purposes": "處理目的", "recipients": "接收方", "retention": "保存期限", "basis": "合法性基礎",
                "pipia": "個人信息保護影響評估（留存，無需提交）", "consent": "同意證明", "filings": "備案",
                "authority": "備案機關", "deadline": "備案期限", "status": "狀態", "filed": "備案日期",
                "reference": "備案編號", "none": "無", "prepared": "編製日期", "working": "個工作日（自合同生效之日起）",
                "not_eligible": "不屬於標準合同適用的當事人"},
}
STATUS = {"en": {"open": "open", "due": "due soon", "overdue": "OVERDUE", "filed": "filed"},
          "zh-Hans": {"open": "待备案", "due": "即将到期", "overdue": "已逾期", "filed": "已备案"},
          "zh-Hant": {"open": "待備案", "due": "即將到期", "overdue": "已逾期", "filed": "已備案"}}
LANGUAGES = tuple(LABELS)


def render_html(p: Json, lang: str) -> str:
    if lang not in LABELS:
        raise FilingError(f"lang must be one of {', '.join(LANGUAGES)}")
    L, S = LABELS[lang], STATUS[lang]

    def e(v: Any) -> str:
        return html.escape(L["none"] if v in (None, "", []) else ", ".join(map(str, v)) if isinstance(v, list) else str(v))

    def row(label: str, value: Any) -> str:
        return f"<tr><th>{html.escape(label)}</th><td>{e(value)}</td></tr>"

    c = p["contract"]
    parts = [f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(L["title"])}</title>',
             "<style>body{font-family:serif;max-width:48em;margin:2em auto}th{text-align:left;vertical-align:top;"
             "padding-right:1em;width:16em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border-bottom:"
             "1px solid #ccc;padding:.3em}@media print{body{margin:0}}</style></head><body>",
             f"<h1>{html.escape(L['title'])}</h1>", f"<h2>{html.escape(L['contract'])}</h2><table>",
             row(L["agreement"], c["agreementId"]), row(L["agreed"], c["agreedAt"]), row(L["effective"], c["effectiveOn"]),
             row(L["asset"], c["assetId"]), row(L["policy"], c["policyUid"]), "</table>",
             f"<h2>{html.escape(L['parties'])}</h2><table>"]
    for role in ("provider", "consumer"):
        q = p[role]
        parts.append(row(L[role], f"{q['organisation'] or ''} ({q['participantId']}), "
                                  f"{L['jurisdiction']}: {q['jurisdiction'] or L['none']}"))
    parts += ["</table><table>", row(L["categories"], p["categories"]), row(L["purposes"], p["purposes"]),
              row(L["recipients"], [f"{r['organisation'] or r['participantId']} ({r['jurisdiction']})" for r in p["recipients"]]),
              row(L["retention"], p["retention"]), row(L["basis"], p["legalBasis"]),
              row(L["pipia"], f"{p['pipia']['reference']} ({p['pipia']['date']})" if p["pipia"] else None),
              row(L["consent"], p["consentEvidence"]), "</table>", f"<h2>{html.escape(L['filings'])}</h2>"]
    for f in p["filings"]:
        parts.append("<table>")
        parts.append(row(L[f["role"]], f"{f['organisation'] or ''} ({f['jurisdiction'] or L['none']})"))
        if not f["eligible"]:
            parts.append(row(L["authority"], L["not_eligible"]))
        else:
            parts += [row(L["authority"], f["authority"][lang]),
                      row(L["deadline"], f"{f['deadline']} ({f['workingDays']} {L['working']})"),
                      row(L["status"], S[f["status"]])]
            if f.get("filedOn"):
                parts += [row(L["filed"], f["filedOn"]), row(L["reference"], f["reference"])]
        parts.append("</table>")
    parts.append(f"<p>{html.escape(L['prepared'])}: {e(p['preparedOn'])}</p></body></html>")
    return "".join(parts)
