"""A cheap necessary condition for libphonenumber to accept a phone candidate in a region.

A matcher run costs 0.3-1 ms, the more so when it fails (it then retries inner groups). The
detector accepts a match only if it holds all the candidate's digits but at most the first or the
last, and the matcher accepts only valid numbers, whose national significant number fully matches
the general pattern of a region of their country code. Parsing reaches that national number from
the digits by stripping, in any order, national prefixes and the region's own country code; or it
dials abroad through the region's international prefix. So a region can be skipped when none of
the national numbers so reachable matches a general pattern and no international prefix starts
the digits. Regions whose prefix rules rewrite digits (Argentina, Brazil, ...) are never skipped.


tests/unit/pii/test_prepass.py checks that no skipped (candidate, region) pair has a match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata

# The number types libphonenumber's validity check tries (phonenumberutil._number_type_helper).
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@dataclass(frozen=True, slots=True)
class _Rules:
    country_code: str
    international_prefix: re.Pattern[str] | None
    national_prefixes: tuple[re.Pattern[str], ...]
    general: re.Pattern[str]


@cache  # one entry per region code used, at most a few hundred
def _rules(region: str) -> _Rules | None:
    """The region's parse rules, or None when it cannot be filtered."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.country_code is None:
        return None
    prefixes: list[re.Pattern[str]] = []
    # Parsing strips national prefixes with the metadata of the region, or of the main region of
    # its country code when it read that code from the digits.
    main = phonenumbers.region_code_for_country_code(meta.country_code)
    for code in dict.fromkeys((region, main)):
        stripping = PhoneMetadata.metadata_for_region(code)
        if stripping is None or stripping.national_prefix_transform_rule:
            return None
        for_parsing = stripping.national_prefix_for_parsing or stripping.national_prefix
        if for_parsing:
            prefixes.append(re.compile(for_parsing))
    # Validity is then checked against the region of the country code whose patterns fit: the
    # general pattern and the pattern of one number type (fixed line, mobile, toll free, ...).
    valid: list[str] = []
    for code in phonenumbers.region_codes_for_country_code(meta.country_code):
        other = PhoneMetadata.metadata_for_region(code)
        if other is None or other.general_desc is None or other.general_desc.national_number_pattern is None:
            return None
        types = [
            desc.national_number_pattern
            for desc in (getattr(other, name) for name in _NUMBER_TYPES)
            if desc is not None and desc.national_number_pattern
        ]
        if types:
            general_pattern = other.general_desc.national_number_pattern
            valid.append(f"(?=(?:{general_pattern})\\Z)(?:{'|'.join(f'(?:{t})' for t in types)})")
    idd = re.compile(meta.international_prefix) if meta.international_prefix else None
    # No type pattern anywhere: nothing is valid, and the empty class never matches.
    general = re.compile("|".join(f"(?:{p})" for p in valid) if valid else "[^\\s\\S]")
    return _Rules(str(meta.country_code), idd, tuple(prefixes), general)


def may_have_valid_number(digits: str, region: str) -> bool:
    """False only when no valid number of ``region`` spans ``digits`` or all but one end digit.

    For candidates written without a leading '+' (with one, the region plays no part).
    """
    rules = _rules(region)
    if rules is None or not digits.isascii():
        return True
    for number in {digits, digits[1:], digits[:-1]}:
        if rules.international_prefix is not None and rules.international_prefix.match(number):
            return True
        reachable = {number}
        pending = [number]
        while pending:
            current = pending.pop()
            nexts = [current[len(rules.country_code) :]] if current.startswith(rules.country_code) else []
            for prefix in rules.national_prefixes:
                m = prefix.match(current)
                if m is not None and m.end() > 0:
                    nexts.append(current[m.end() :])
            for shorter in nexts:
                if shorter and shorter not in reachable:
                    reachable.add(shorter)
                    pending.append(shorter)
        if any(rules.general.fullmatch(national) for national in reachable):
            return True
    return False
