"""Entity detectors: a cheap, linear-time candidate regex, then a validator that confirms the value.

Every regex here is linear: each quantifier is bounded, and repeated groups start with a separator
that the preceding group cannot consume, so no input string can make the engine backtrack more than
a constant per position. Lookbehinds anchor candidates so a long run (of digits, say) yields one
attempt at its start instead of one per position.

Speed (docs/benchmarks.md): the digit regexes run over the text's digit runs only, and the email
and IPv6 regexes around '@' and ':' (windows.py); libphonenumber runs only for regions where a
valid number can fit (phone_prefilter.py), and its answers are cached per (candidate, region).
``prepass=False`` turns all of that off except the caches: the reference the tests compare with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Final, Protocol

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

from compliance.pii.findings import Finding, PiiType
from compliance.pii.phone_prefilter import may_have_valid_number
from compliance.pii.windows import DigitRuns, trigger_windows


class Detector(Protocol):
    """``runs``: the text's digit runs, shared by the digit detectors (computed when None).
    ``prepass=False`` runs every regex over the whole text: the reference the pre-pass must match.
    """

    def __call__(
        self, text: str, regions: Sequence[str], *, runs: DigitRuns | None = None, prepass: bool = True
    ) -> Iterator[Finding]: ...


def _digit_runs(
    text: str, runs: DigitRuns | None, prepass: bool, min_length: int = 0, min_dots: int = 0
) -> DigitRuns:
    """The runs to scan: those that can hold a match of ``min_length`` with ``min_dots`` dots."""
    if not prepass:
        return DigitRuns.whole(text)
    return (runs if runs is not None else DigitRuns.of(text)).having(min_length, min_dots)


# ---------------------------------------------------------------- email

# The lookbehind lets a local part start only where a run of local-part characters starts, so a long
# run without '@' costs one bounded attempt, not one per position.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'\-])[A-Za-z0-9._%+'\-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
_TLD = re.compile(r"[A-Za-z]{2,24}\Z")
# How far a domain can run after the '@' (8 dotted labels of 63 and one more): bounds the windows.
_DOMAIN_REACH = re.compile(r"[A-Za-z0-9.\-]{0,576}")


def _email_matches(text: str, prepass: bool) -> Iterator[re.Match[str]]:
    if not prepass:
        yield from _EMAIL.finditer(text)
        return
    # A match starts at most 64 characters before its '@' and ends inside the domain run after it.
    for pos, endpos in trigger_windows(text, "@", 64, 1, _DOMAIN_REACH):
        yield from _EMAIL.finditer(text, pos, endpos)


def detect_emails(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _email_matches(text, prepass):
        start, end = m.span()
        at = text.index("@", start)
        while start < at and text[start] in ".'":
            start += 1  # "...jane@x.org" or quoted 'jane@x.org': the punctuation is not part of it
        if start == at or text[at - 1] == "." or ".." in text[start:at]:
            continue
        labels = text[at + 1 : end].split(".")
        if not _TLD.match(labels[-1]) or any(lab[0] == "-" or lab[-1] == "-" for lab in labels):
            continue
        if end < len(text) and (text[end] == "@" or text[end] == "-"):
            continue
        if end + 1 < len(text) and text[end] == ":" and not text[end + 1].isspace():
            continue  # scp-style "git@github.com:org/repo.git": a host login, not a mailbox
        yield Finding(PiiType.EMAIL, start, end, 0.95, "rfc5321_syntax")


# ---------------------------------------------------------------- phone

# Digits with the separators people use in phone numbers; at least 7 digits, at most 32 characters.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+.\-/])(?<!\d[ \-.])(?:\+|\()?\d[\d \-.()]{5,30}\d(?![\w]|[ \-.,]\d)")
_DATE_LIKE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4}\Z")
_IPV4_LIKE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")
_NEGATIVE_WORDS = (
    "order|invoice|isbn|tracking|ref|reference|sku|serial|id|ticket|case|build|version|txn|"
    "transaction|account|acct|iban|card|po|no|lot|batch|part|usd|eur|gbp|inr|chf|jpy"
)
# A word saying the number is something else, then at most 6 separators or "no"-like words.
_NEGATIVE_CONTEXT = re.compile(
    rf"(?:\b(?:{_NEGATIVE_WORDS})\b|[#$€£¥₹])(?:[\s:#.\-]|number|no\b|nr\b|1[03]\b){{0,6}}\Z",
    re.IGNORECASE,
)
# The same language read backwards, matched at the start of the reversed context: one anchored
# attempt instead of a search trying the alternation at every position (~1 us instead of ~10 us).
# \b is symmetric, so it keeps its place; only the literals are reversed.
_NEGATIVE_CONTEXT_REVERSED = re.compile(
    rf"(?:[\s:#.\-]|rebmun|\bon|\brn|\b[03]1){{0,6}}"
    rf"(?:\b(?:{'|'.join(word[::-1] for word in _NEGATIVE_WORDS.split('|'))})\b|[#$€£¥₹])",
    re.IGNORECASE,
)


def _negative_context(before: str) -> bool:
    """Whether ``_NEGATIVE_CONTEXT`` matches at the end of ``before``."""
    return _NEGATIVE_CONTEXT_REVERSED.match(before[::-1]) is not None


_PHONE_CONTEXT = re.compile(
    r"\b(?:phone|tel|call|mobile|cell|text me|whatsapp|fax|contact|reach|number|ring|sms|dial|tél|telefon|"
    r"handy)",
    re.IGNORECASE,
)


# libphonenumber runs (~0.1-0.5 ms each) allowed per scan: bounds a text made of phone-shaped numbers.
PHONE_VALIDATION_BUDGET = 2_000
# Bounds the matcher's work on one candidate (its default is 65,535 attempts).
_MATCHER_MAX_TRIES = 16


def _context_before(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width) : start]


def _has_non_dot_separator(raw: str) -> bool:
    """Whether ``raw`` has a separator other than the dot (space, dash, parenthesis)."""
    return any(ch in " -()" for ch in raw)


@lru_cache(maxsize=8192)
def _phone_shape(raw: str, regions: tuple[str, ...], prefilter: bool) -> tuple[str, Sequence[str]] | None:
    """(digits, plausible regions) of a candidate whose shape can be a phone number, else None.

    Depends on the candidate alone, so it is cached: numbers repeat across records. ``prefilter``
    drops the regions where the matcher cannot succeed (phone_prefilter.py).
    """
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) < 7 or len(digits) > 16 or _DATE_LIKE.match(raw) or _IPV4_LIKE.match(raw):
        return None
    if "." in raw and (
        any(len(group) == 1 for group in raw.split("."))
        or (raw.count(".") == 1 and not _has_non_dot_separator(raw))
    ):
        # "94.0.6411.021" is a version string and "169.032737" a decimal: dotted phone numbers
        # have two or more groups of 2+ digits.
        return None
    plausible = _plausible_regions(raw, digits, regions)
    if prefilter and not raw.startswith("+"):
        plausible = [region for region in plausible if may_have_valid_number(digits, region)]
    return digits, tuple(plausible)


def _plausible_regions(raw: str, digits: str, regions: Sequence[str]) -> Sequence[str]:
    """Regions whose national number lengths fit the candidate: saves matcher runs, which dominate."""
    if raw.startswith("+") or digits.startswith("00"):
        return regions[:1]  # international: parses the same under any default region
    plausible = []
    for region in regions:
        fit = _region_lengths(region)
        if fit is None:
            continue
        prefix, lengths = fit
        national = digits[len(prefix) :] if prefix and digits.startswith(prefix) else digits
        if len(national) in lengths:
            plausible.append(region)
    return plausible


_REGION_LENGTHS: dict[str, tuple[str, frozenset[int]] | None] = {}


def _region_lengths(region: str) -> tuple[str, frozenset[int]] | None:
    """(national prefix, possible national number lengths) of a region, from its metadata."""
    if region not in _REGION_LENGTHS:
        meta = PhoneMetadata.metadata_for_region(region)
        if meta is None or meta.general_desc is None:
            _REGION_LENGTHS[region] = None
        else:
            lengths = frozenset(meta.general_desc.possible_length or ())
            _REGION_LENGTHS[region] = (meta.national_prefix or "", lengths)
    return _REGION_LENGTHS[region]


# (candidate, region) -> (start, end, digit count) of the matcher's first valid number in the
# candidate, or None. A matcher run costs 0.1-0.5 ms; texts repeat numbers (signatures, threads,
# batches of similar records). Bounded: the oldest entries go first.
_MATCH_CACHE: dict[tuple[str, str], tuple[int, int, int] | None] = {}
MATCH_CACHE_SIZE: Final = 8192


def _match_number(raw: str, region: str) -> tuple[int, int, int] | None:
    matcher = PhoneNumberMatcher(raw, region, leniency=Leniency.VALID, max_tries=_MATCHER_MAX_TRIES)
    match = next(iter(matcher), None)
    result = None
    if match is not None:
        result = (match.start, match.end, sum(ch.isdigit() for ch in match.raw_string))
    if len(_MATCH_CACHE) >= MATCH_CACHE_SIZE:
        try:
            del _MATCH_CACHE[next(iter(_MATCH_CACHE))]
        except (KeyError, StopIteration, RuntimeError):
            _MATCH_CACHE.clear()  # another thread evicted or cleared meanwhile
    _MATCH_CACHE[(raw, region)] = result
    return result


def clear_caches() -> None:
    """Forget every per-value answer (matcher runs, phone candidate shapes, IP checks): they are
    personal data. ``scan`` calls it before returning (nothing outlives the request)."""
    _MATCH_CACHE.clear()
    _phone_shape.cache_clear()
    _ipv4_confidence.cache_clear()
    _ipv6_confidence.cache_clear()


_UNCACHED: Final = (-1, -1, -1)


def detect_phones(
    text: str,
    regions: Sequence[str],
    claimed: Sequence[Finding] = (),
    *,
    runs: DigitRuns | None = None,
    prepass: bool = True,
) -> Iterator[Finding]:
    """Phone numbers valid in one of ``regions`` (tried in order), outside the ``claimed`` spans.

    Candidates are cut by a cheap regex; libphonenumber's matcher then finds and validates the number
    inside each one. Spans already claimed by a stricter detector (card, SSN, IBAN, IP) are skipped.
    After ``PHONE_VALIDATION_BUDGET`` matcher runs, candidates are reported unverified (confidence 0.5);
    answers already in the cache cost no budget.
    """
    taken = bytearray(len(text)) if claimed else None
    for finding in claimed:
        assert taken is not None
        taken[finding.start : finding.end] = b"\x01" * finding.length
    budget = PHONE_VALIDATION_BUDGET
    cache = _MATCH_CACHE
    region_order = tuple(regions)
    for shift, cand in _digit_runs(text, runs, prepass).finditer(_PHONE_CANDIDATE):
        cand_start, cand_end = cand.start() + shift, cand.end() + shift
        if taken is not None and taken.find(1, cand_start, cand_end) != -1:
            continue
        raw = cand.group()
        shape = _phone_shape(raw, region_order, prepass)
        if shape is None:
            continue
        digits, plausible = shape
        before = _context_before(text, cand_start)
        if _negative_context(before):
            continue
        plain = raw.isdigit()
        # A bare digit run is as likely an id or an amount as a phone number: take it only next
        # to a word that says it is one.
        if plain and not (
            _PHONE_CONTEXT.search(before) or _PHONE_CONTEXT.search(text, cand_end, cand_end + 24)
        ):
            continue
        exhausted = budget <= 0
        for region in plausible:
            found = cache.get((raw, region), _UNCACHED)
            if found is _UNCACHED:
                if exhausted:
                    # Past the budget, report what passed the cheap checks, flagged as unverified:
                    # over-redacting an abusive input beats missing numbers or running for minutes.
                    yield Finding(PiiType.PHONE, cand_start, cand_end, 0.5, "phone_shape_unverified")
                    break
                budget -= 1
                found = _match_number(raw, region)
            # A valid number inside a longer digit group ("4103 1692 5246") is part of something else.
            if found is None or found[2] < max(7, len(digits) - 1):
                continue
            if raw.startswith("+"):
                confidence = 0.9
            elif plain:
                confidence = 0.7
            else:
                confidence = 0.8
            yield Finding(
                PiiType.PHONE, cand_start + found[0], cand_start + found[1], confidence, "libphonenumber"
            )
            break


# ---------------------------------------------------------------- US SSN

_SSN = re.compile(r"(?<![\w.\-+])(?<!\d[ \-])(\d{3})([\- ]?)(\d{2})\2(\d{4})(?![\w]|[ \-]\d)")
_SSN_CONTEXT = re.compile(
    r"\bssn\b|social security|\bsoc\.? sec|\bss#|\bss no|taxpayer|\btin\b", re.IGNORECASE
)
# For ASCII text, which case-folds like str.lower(): the same pattern on the lowered text, without
# IGNORECASE (about 2x faster), behind substring tests (about 20x faster) that every alternative
# passes: "ssn", "soc" (also in "social security"), "ss#", "ss no", "taxpayer", "tin".
_SSN_CONTEXT_LOWER = re.compile(_SSN_CONTEXT.pattern)
_SSN_CONTEXT_GATE = ("ssn", "soc", "ss#", "ss no", "taxpayer", "tin")


def _ssn_context(context: str) -> bool:
    """``_SSN_CONTEXT.search(context) is not None``, faster."""
    if not context.isascii():
        return _SSN_CONTEXT.search(context) is not None  # non-ASCII folding: long s matches "s"
    lowered = context.lower()
    return (
        any(word in lowered for word in _SSN_CONTEXT_GATE) and _SSN_CONTEXT_LOWER.search(lowered) is not None
    )


# Published by the SSA as never valid, or famously misused (Woolworth wallet card, ad samples).
_SSN_BLOCKLIST = frozenset({"078051120", "219099999", "123456789"})


def ssn_is_valid(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_BLOCKLIST


def detect_ssns(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    for shift, m in _digit_runs(text, runs, prepass, min_length=9).finditer(_SSN):
        area, sep, group, serial = m.groups()
        if not ssn_is_valid(area, group, serial):
            continue
        start, end = m.start() + shift, m.end() + shift
        before = _context_before(text, start, 40)
        # The slice after the match reads like search(text, end, end + 24): no alternative can
        # start at ``end``, which the regex above keeps from being a word character.
        has_context = _ssn_context(before) or _ssn_context(text[end : end + 24])
        if not sep and not has_context:
            continue  # nine bare digits are usually something else
        if not has_context and _negative_context(before):
            continue
        confidence = 0.9 if has_context else (0.85 if sep == "-" else 0.7)
        yield Finding(PiiType.SSN, start, end, confidence, "ssa_area_group_serial")


# ---------------------------------------------------------------- payment cards

_CARD = re.compile(r"(?<![\w.\-+])(?<!\d[ \-])\d(?:[ \-]?\d){12,18}(?![\w]|[ \-]?\d)")
_CARD_GROUPINGS = frozenset({(4, 6, 5), (4, 6, 4)})


# Luhn's doubled digit value, digit sum taken, for ASCII digits.
_LUHN_DOUBLED = {str(d): d * 2 - 9 if d > 4 else d * 2 for d in range(10)}


def luhn_ok(digits: str) -> bool:
    if digits.isascii() and digits.isdigit():
        # The same sum with the loop in C: undoubled digits from the right, then doubled ones.
        doubled = _LUHN_DOUBLED
        total = sum(map(int, digits[::-2])) + sum(doubled[ch] for ch in digits[-2::-2])
        return total % 10 == 0
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    """The issuer whose IIN range and length fit, or None."""
    n = len(digits)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    discover = four == 6011 or 644 <= int(digits[:3]) <= 649 or two == 65 or 622126 <= six <= 622925
    if discover and 16 <= n <= 19:
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= int(digits[:3]) <= 305 or four == 3095 or two in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    return None


def _card_grouping_ok(raw: str) -> bool:
    if raw.isdigit():
        return True
    if raw.replace(" ", "").replace("-", "").isdigit():
        # The card regex's alphabet: the separators are spaces, dashes or both.
        seps = {sep for sep in " -" if sep in raw}
    else:
        seps = {ch for ch in raw if not ch.isdigit()}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    groups = tuple(len(g) for g in raw.split(seps.pop()))
    return groups in _CARD_GROUPINGS or all(g == 4 for g in groups[:-1])


def detect_cards(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    for shift, m in _digit_runs(text, runs, prepass, min_length=13).finditer(_CARD):
        confidence = _card_confidence(m.group())
        if confidence is not None:
            yield Finding(PiiType.CREDIT_CARD, m.start() + shift, m.end() + shift, confidence, "luhn")


def _card_confidence(raw: str) -> float | None:
    """Confidence for a card candidate whose grouping, issuer and Luhn digit check out, else None."""
    if not _card_grouping_ok(raw):
        return None
    digits = raw.replace(" ", "").replace("-", "")
    if card_issuer(digits) is None or not luhn_ok(digits):
        return None
    return 0.9 if raw.isdigit() else 0.95


# ---------------------------------------------------------------- IBAN

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
# Country code, check digits, then up to 30 alphanumerics, in groups of four or unbroken.
# The first letter comes before the lookbehind so the engine can skip to candidate characters.
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")


def iban_checksum_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def detect_ibans(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        expected = IBAN_LENGTHS.get(raw[:2])
        if expected is None:
            continue
        # The regex may run into a following word ("... 00 EUR"): cut at the country's length.
        count = 0
        end = m.start()
        for i, ch in enumerate(raw):
            if ch != " ":
                count += 1
            if count == expected:
                end = m.start() + i + 1
                break
        if count < expected or (end < len(text) and text[end].isalnum()):
            continue
        if iban_checksum_ok(text[m.start() : end].replace(" ", "")):
            yield Finding(PiiType.IBAN, m.start(), end, 0.95, "mod97")


# ---------------------------------------------------------------- IP addresses

# The first character comes before the lookbehind so the engine can skip to candidate characters.
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
# Whole words only: "Server 10.0.0.12" is an address, "ver 10.0.0.12" a version.
_VERSION_CONTEXT = re.compile(
    r"(?:\b(?:v|version|ver\.?|release|build|section|chapter)|§)\s?\Z", re.IGNORECASE
)
_IPV6_AFTER_COLON = frozenset("0123456789abcdefABCDEF:.")
_IPV6 = re.compile(r"[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])[0-9A-Fa-f]{0,3}:[0-9A-Fa-f:.]{1,44}(?![\w:])")


# ipaddress parsing and is_global cost 5-40 us per address; addresses repeat (gateways, resolvers).
@lru_cache(maxsize=4096)
def _ipv4_confidence(raw: str) -> float | None:
    try:
        addr = ipaddress.IPv4Address(raw)
    except ValueError:
        return None
    return 0.85 if addr.is_global else 0.6


@lru_cache(maxsize=4096)
def _ipv6_confidence(raw: str) -> float | None:
    try:
        addr = ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return 0.85 if addr.is_global else 0.6


def _ipv6_matches(text: str, prepass: bool) -> Iterator[re.Match[str]]:
    if not prepass:
        yield from _IPV6.finditer(text)
        return
    # A match's first ':' is among its first 5 characters and followed by a hex digit, ':' or '.';
    # the match is at most 49 long, plus 1 of lookahead.
    for pos, endpos in trigger_windows(text, ":", 4, 50, followed_by=_IPV6_AFTER_COLON):
        yield from _IPV6.finditer(text, pos, endpos)


def detect_ips(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    for shift, m in _digit_runs(text, runs, prepass, min_length=7, min_dots=3).finditer(_IPV4):
        start = m.start() + shift
        if _VERSION_CONTEXT.search(_context_before(text, start, 12)):
            continue
        confidence = _ipv4_confidence(m.group())
        if confidence is not None:
            yield Finding(PiiType.IP_ADDRESS, start, m.end() + shift, confidence, "ipv4")
    if ":" not in text:
        return
    for m in _ipv6_matches(text, prepass):
        raw = m.group().rstrip(".")
        # "a::b" and "1::2" are slices in code; a real address has more than four hex digits.
        if raw.count(":") < 2 or sum(ch not in ":." for ch in raw) < 5:
            continue
        confidence = _ipv6_confidence(raw)
        if confidence is not None:
            yield Finding(PiiType.IP_ADDRESS, m.start(), m.start() + len(raw), confidence, "ipv6")


# ---------------------------------------------------------------- secrets

# (name, literals one of which the token contains, pattern): the literal check is a fast substring
# search, so texts without any token prefix cost one pass per literal instead of one regex each.
# (name, literals one of which the token contains, pattern). Each pattern starts with its literal and
# checks the preceding character by a lookbehind after it, so the engine can skip ahead to the literal;
# the substring gate skips the regex entirely for texts without the literal.
_SECRET_PATTERNS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "aws_access_key_id",
        ("AKIA", "ASIA"),
        re.compile(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    ("anthropic_key", ("sk-ant-",), re.compile(r"sk-ant-(?<![\w-]sk-ant-)[A-Za-z0-9_\-]{20,200}(?![\w-])")),
    ("openai_key", ("sk-",), re.compile(r"sk-(?<![\w-]sk-)(?!ant-)[A-Za-z0-9_\-]{20,200}(?![\w-])")),
    (
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"gh(?<!\wgh)[pousr]_[A-Za-z0-9]{36,76}(?![\w])"),
    ),
    (
        "github_pat",
        ("github_pat_",),
        re.compile(r"github_pat_(?<!\wgithub_pat_)[A-Za-z0-9_]{22,255}(?![\w])"),
    ),
    ("gitlab_token", ("glpat-",), re.compile(r"glpat-(?<![\w-]glpat-)[A-Za-z0-9_\-]{20,50}(?![\w-])")),
    ("slack_token", ("xox",), re.compile(r"xox(?<![\w-]xox)[baprs]-[A-Za-z0-9\-]{10,200}(?![\w-])")),
    ("google_api_key", ("AIza",), re.compile(r"AIza(?<![\w-]AIza)[A-Za-z0-9_\-]{35}(?![\w-])")),
    ("huggingface_token", ("hf_",), re.compile(r"hf_(?<![\w-]hf_)[A-Za-z0-9]{34,40}(?![\w-])")),
    (
        "stripe_secret_key",
        ("_live_",),
        re.compile(r"[sr]k_live_(?<![\w-][sr]k_live_)[A-Za-z0-9]{20,100}(?![\w-])"),
    ),
)
_PEM_BEGIN = re.compile(r"-----BEGIN (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----")
# Base64 lines after the header; each line starts with a newline the line class excludes (linear).
_PEM_BODY = re.compile(r"(?:\r?\n[A-Za-z0-9+/=]{1,128}){0,256}")
_MAX_PEM_CHARS = 16384


_GENERIC_PREFIX_TOKENS = frozenset({"openai_key", "anthropic_key"})


def _token_entropy_ok(token: str) -> bool:
    # Real keys mix letters and digits; "sk-my-very-long-kebab-case-name" does not.
    return any(ch.isdigit() for ch in token) and any(ch.isalpha() for ch in token)


def detect_secrets(
    text: str, regions: Sequence[str] = (), *, runs: DigitRuns | None = None, prepass: bool = True
) -> Iterator[Finding]:
    for name, literals, pattern in _SECRET_PATTERNS:
        if not any(literal in text for literal in literals):
            continue
        for m in pattern.finditer(text):
            # Distinctive prefixes ("AKIA", "ghp_") are specific enough; "sk-" also starts names.
            if name in _GENERIC_PREFIX_TOKENS and not _token_entropy_ok(m.group()):
                continue
            yield Finding(PiiType.SECRET, m.start(), m.end(), 0.97, name)
    if "-----BEGIN" not in text:
        return
    # One forward search for the next END, reused across BEGINs before it: linear in the text even
    # when it repeats BEGIN lines without END.
    end_match = _PEM_END.search(text)
    for m in _PEM_BEGIN.finditer(text):
        if end_match is not None and end_match.start() < m.end():
            end_match = _PEM_END.search(text, m.end())
        if end_match is not None and end_match.start() - m.end() <= _MAX_PEM_CHARS:
            end = end_match.end()
        else:
            # A truncated paste still leaks the key material: take the base64 body that follows.
            body = _PEM_BODY.match(text, m.end())
            end = body.end() if body else m.end()
        yield Finding(PiiType.SECRET, m.start(), end, 0.99, "private_key_block")


DETECTORS: dict[PiiType, Detector] = {
    PiiType.EMAIL: detect_emails,
    PiiType.PHONE: detect_phones,
    PiiType.SSN: detect_ssns,
    PiiType.CREDIT_CARD: detect_cards,
    PiiType.IBAN: detect_ibans,
    PiiType.IP_ADDRESS: detect_ips,
    PiiType.SECRET: detect_secrets,
}

SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
