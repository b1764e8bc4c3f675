"""The pre-pass (digit runs, trigger windows, gated context checks, matcher cache) changes no finding.

Reference: every detector regex run over the whole text (``prepass=False``), the scanner as it was
before the pre-pass. Inputs: random strings over an alphabet of the characters the regexes care
about, and splices of the labelled corpus.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.pii import Finding, PiiType, phone_prefilter, scan
from compliance.pii import detectors as det
from compliance.pii.scanner import DEFAULT_REGIONS, run_detectors
from compliance.pii.windows import DigitRuns, trigger_windows
from compliance_tools.bench.pii import load_records

CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "pii"
ALL_TYPES = list(PiiType)

# Pieces that build candidates and their context: digits (ASCII and not), separators, letters,
# '@' and ':', context words, case-folding oddities (long s, Kelvin sign, dotless i).
_PIECES = [
    *"0123456789",
    *" -.()+/:#@$€_\n\t",
    *"abcdefxyzSTK",
    "\u0663",
    "\uff10",
    "\u017f",
    "\u212a",
    "\u0131",
    "555",
    "1234",
    "4111 1111 1111 1111",
    "078-05-1120",
    "123-45-6789",
    "192.168.0.1",
    "fe80::1",
    "2001:db8::8a2e:370:7334",
    "+44 20 7946 0958",
    "(212) 555-0148",
    "030 123456",
    "DE89 3704 0044 0532 0130 00",
    "jane.doe@example.org",
    "a@b.co",
    "firstname.o'brien+newsletter",
    "x" * 40,
    ".example-domain.co",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "::ffff:192.0.2.128",
    "ssn",
    "SSN: ",
    "social security",
    "tin",
    "call ",
    "tel. ",
    "order no. ",
    "Invoice number 10 ",
    "USD ",
    "ref#",
    "version ",
    "v",
    "ghp_",
    "sk-",
    "AKIA",
]
random_texts = st.lists(st.sampled_from(_PIECES), max_size=60).map("".join)


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    records = load_records("corpus.jsonl", CORPUS_DIR) + load_records("hard_negatives.jsonl", CORPUS_DIR)
    return [r["text"] for r in records]


def _detector_outputs(text: str, prepass: bool) -> Iterator[list[Finding]]:
    runs = DigitRuns.of(text) if prepass else None
    claimed: list[Finding] = []
    for pii_type, detector in det.DETECTORS.items():
        if pii_type is PiiType.PHONE:
            continue
        found = list(detector(text, DEFAULT_REGIONS, runs=runs, prepass=prepass))
        claimed.extend(found)
        yield found
    yield list(det.detect_phones(text, DEFAULT_REGIONS, claimed, runs=runs, prepass=prepass))


def _assert_same_as_reference(text: str) -> None:
    # Each detector on its own, before overlaps are resolved, then the whole scan
    assert list(_detector_outputs(text, True)) == list(_detector_outputs(text, False))
    assert run_detectors(text, DEFAULT_REGIONS, ALL_TYPES) == run_detectors(
        text, DEFAULT_REGIONS, ALL_TYPES, prepass=False
    )


@settings(max_examples=400, deadline=None)
@given(random_texts)
def test_prepass_finds_what_whole_text_regexes_find_on_random_text(text: str) -> None:
    # Given a random string of candidate pieces, When scanned with and without the pre-pass,
    # Then every detector reports the same findings
    _assert_same_as_reference(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_prepass_finds_what_whole_text_regexes_find_on_corpus_splices(
    corpus_texts: list[str], data: st.DataObject
) -> None:
    # Given records of the corpus cut at random points and glued together (entities cut in half,
    # joined to the next one, separated by random pieces)
    parts = []
    for _ in range(data.draw(st.integers(1, 4))):
        record = data.draw(st.sampled_from(corpus_texts))
        start = data.draw(st.integers(0, len(record)))
        end = data.draw(st.integers(start, len(record)))
        parts.append(record[start:end])
        parts.append(data.draw(st.sampled_from(["", " ", "-", "1", ".", "@", ":", "\n"])))
    # Then the pre-pass changes nothing
    _assert_same_as_reference("".join(parts))


def test_prepass_agrees_on_the_whole_corpus_as_one_document(corpus_texts: list[str]) -> None:
    _assert_same_as_reference("\n\n".join(corpus_texts))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no digits at all",
        "7" * 5000,
        "1 " * 3000,
        "12-" * 2000,
        "@" * 3000,
        "a@" * 2000,
        "x@" + "a." * 2000,
        "a:" * 3000,
        "(+(+(+1234567",
        "mail " + "l" * 64 + "@example.org and " + "m" * 65 + "@example.org",
        "x@" + ".".join(["label-" + "d" * 57] * 9) + ".org",
        "x@" + ".".join(["abcdefghij" * 2] * 9) + " end",  # the longest domain the regex takes
        "ip 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and 1::2 and fe80:0000:0000:0000:0204:61ff:fe9d:f156",
        "\u0663" * 3 + "-" + "\u0663" * 2 + "-" + "\u0663" * 4 + " and \uff10\uff13\uff10 " + "\uff11" * 7,
        "NUL \x00 inside 123-45-6789 and a@b.co",  # detectors fall back to the whole text
    ],
)
def test_prepass_agrees_on_edge_shapes(text: str) -> None:
    _assert_same_as_reference(text)


_CONTEXT_PIECES = [
    *" :#.-\n",
    *"$€£¥₹",
    "no",
    "No",
    "nr",
    "number",
    "10",
    "13",
    "1",
    "x",
    "\u017f",
    "\u212a",
    "order",
    "ORDER",
    "card",
    "id",
    "ref",
    "reference",
    "transaction",
    "po",
    "usd",
    "JPY",
    "ticket",
]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_CONTEXT_PIECES), max_size=14).map("".join))
def test_reversed_negative_context_agrees_with_the_forward_regex(before: str) -> None:
    # Given a context made of separators, "no"-words and negative words, When checked both ways,
    # Then the anchored match on the reversed text agrees with the forward search
    assert det._negative_context(before) == (det._NEGATIVE_CONTEXT.search(before) is not None)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["ssn", "SSN", "Social Security", "soc. sec", "SOC SEC", "ss#", "Ss No", "TIN", "taxpayer"]
        )
        | st.text(alphabet="abstinoxST .#-\u017f\u212a", max_size=6),
        max_size=8,
    ).map("".join)
)
def test_ssn_context_check_agrees_with_the_case_insensitive_regex(context: str) -> None:
    # Given ASCII and non-ASCII contexts (long s and Kelvin sign fold to "s" and "k" only in the
    # regex), When checked, Then the lowered-ASCII fast path agrees with the regex
    assert det._ssn_context(context) == (det._SSN_CONTEXT.search(context) is not None)


def test_trigger_windows_merge_and_fall_back_to_the_whole_text_when_dense() -> None:
    text = "x" * 100 + "@" + "x" * 100 + "@" + "x" * 300 + "@"
    # Given triggers at 100, 201 and 502, windows 10 + 10 wide, Then one window per trigger
    assert trigger_windows(text, "@", 10, 10) == [(90, 111), (191, 212), (492, 503)]
    # Given windows wider than half the gap, Then those that overlap merge
    assert trigger_windows(text, "@", 60, 60) == [(40, 262), (442, 503)]
    # Given windows that would cover the text anyway, Then the whole text in one span
    assert trigger_windows(text, "@", 200, 200) == [(0, len(text))]
    assert trigger_windows("no trigger", "@", 10, 10) == []


def test_digit_runs_keep_only_runs_long_enough_for_a_candidate() -> None:
    text = "a 12 b 1234567 c +1 (555) 123-4567."
    runs = DigitRuns.of(text)
    # Then "12" is left out; each run keeps 4 characters before its first digit (a '+' or '(' and
    # 3 of context) and 3 after its last separator
    assert runs.joined.split("\x00") == ["2 b 1234567 c +", " c +1 (555) 123-4567."]
    shifted = [(m.start() + shift, m.group()) for shift, m in runs.finditer(re.compile(r"\d{7}"))]
    assert shifted == [(7, "1234567")]


def test_a_repeated_number_costs_validation_budget_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a budget of one validation per scan (and nothing cached by tests that ran detectors)
    det.clear_caches()
    monkeypatch.setattr(det, "PHONE_VALIDATION_BUDGET", 1)
    # When a text holds one number twice and then another number
    found = scan("call (212) 555-0148, yes (212) 555-0148, or (212) 555-0199", regions=["US"])
    # Then the repeat is answered from the cache (validated), the new one is only shape-checked
    assert [f.validation for f in found] == ["libphonenumber", "libphonenumber", "phone_shape_unverified"]


def test_no_value_outlives_the_scan() -> None:
    # When a text with a phone number and an IP address is scanned
    assert len(scan("call (212) 555-0148 from 192.0.2.7", regions=["US"])) == 2
    # Then the per-value caches are empty again: nothing personal stays for the next request
    assert not det._MATCH_CACHE
    assert det._phone_shape.cache_info().currsize == 0
    assert det._ipv4_confidence.cache_info().currsize == 0


def test_the_phone_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a cache of 3 entries
    det.clear_caches()
    monkeypatch.setattr(det, "MATCH_CACHE_SIZE", 3)
    # When more distinct numbers than that are validated in one run
    text = "\n".join(f"call (212) 555-01{i:02d}" for i in range(10))
    try:
        first = run_detectors(text, ("US",), list(PiiType))
        # Then the cache keeps the newest 3, and running again gives the same findings
        assert len(det._MATCH_CACHE) == 3
        assert run_detectors(text, ("US",), list(PiiType)) == first
        assert len(first) == 10
    finally:
        det.clear_caches()


# Regions with one or several regions per country code, with and without national prefixes.
_PREFILTER_REGIONS = [
    "US",
    "CA",
    "GB",
    "DE",
    "FR",
    "IN",
    "IT",
    "ES",
    "NL",
    "CH",
    "JP",
    "AU",
    "SG",
    "RU",
    "KZ",
]


def test_the_region_prefilter_skips_only_regions_where_the_matcher_finds_nothing(
    corpus_texts: list[str],
) -> None:
    # Given every phone-shaped candidate of the corpus and number-like variants of it
    candidates = {
        m.group()
        for text in corpus_texts
        for m in det._PHONE_CANDIDATE.finditer(text)
        if det._phone_shape(m.group(), tuple(_PREFILTER_REGIONS), False) is not None
        and not m.group().startswith("+")  # written internationally: never filtered
    }
    candidates |= {"1" + c for c in list(candidates)[:80]} | {"0" + c for c in list(candidates)[:80]}
    skipped = 0
    try:
        for raw in sorted(candidates):
            digits = "".join(ch for ch in raw if ch.isdigit())
            for region in _PREFILTER_REGIONS:
                if phone_prefilter.may_have_valid_number(digits, region):
                    continue
                skipped += 1
                # When the prefilter skips a region, Then the matcher finds no number there that
                # the detector would take (one with all digits but at most one end digit)
                found = det._match_number(raw, region)
                assert found is None or found[2] < max(7, len(digits) - 1), (raw, region, found)
    finally:
        det.clear_caches()
    assert skipped > 100  # the check above ran on enough pairs to mean something


# The IBAN regex as it was before its first letter moved ahead of the lookbehind.
_IBAN_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?")


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["DE", "GB", "89", "3704", "WEST", " ", "x", "a", "0", "Q", "DE89 3704 0044 0532 0130 00"]
        ),
        max_size=20,
    ).map("".join)
)
def test_the_reordered_iban_regex_matches_what_the_original_matched(text: str) -> None:
    assert [m.span() for m in det._IBAN.finditer(text)] == [m.span() for m in _IBAN_BEFORE.finditer(text)]


def _luhn_loop(digits: str) -> bool:
    # The digit-by-digit loop luhn_ok keeps for non-ASCII input
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789", max_size=22))
def test_luhn_fast_path_agrees_with_the_digit_loop(digits: str) -> None:
    assert det.luhn_ok(digits) == _luhn_loop(digits)
