"""The labelled corpus is sound, and the scanner meets the accuracy floors of issue 4 on it."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from compliance.pii import PiiType
from compliance_tools.bench.pii import Accuracy, evaluate, load_records

CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "pii"
RECALL_FLOORS = {
    PiiType.EMAIL: 0.99,
    PiiType.SSN: 0.99,
    PiiType.CREDIT_CARD: 0.99,
    PiiType.PHONE: 0.95,
}
MAX_FP_PER_100_NEGATIVES = 1.0


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_corpus_generator", CORPUS_DIR / "generate_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def positives() -> list[dict[str, Any]]:
    return load_records("corpus.jsonl", CORPUS_DIR)


@pytest.fixture(scope="module")
def negatives() -> list[dict[str, Any]]:
    return load_records("hard_negatives.jsonl", CORPUS_DIR)


@pytest.fixture(scope="module")
def accuracy(positives: list[dict[str, Any]], negatives: list[dict[str, Any]]) -> Accuracy:
    return evaluate(positives, negatives)


def test_committed_corpus_is_what_the_seeded_generator_produces() -> None:
    # Given the generator script and its seed
    generator = _generator()
    # When it builds the corpus in memory
    positives, negatives = generator.build()
    # Then the committed files are exactly its output (nobody hand-edited or forgot to regenerate)
    assert (CORPUS_DIR / "corpus.jsonl").read_text(encoding="utf-8") == generator.render(positives)
    assert (CORPUS_DIR / "hard_negatives.jsonl").read_text(encoding="utf-8") == generator.render(negatives)


def test_every_label_span_cuts_exactly_the_planted_value(positives: list[dict[str, Any]]) -> None:
    # Given every labelled record
    for record in positives:
        spans = sorted((e["start"], e["end"]) for e in record["entities"])
        for entity in record["entities"]:
            # Then the span is inside the text, cuts the planted value and names a known type
            assert 0 <= entity["start"] < entity["end"] <= len(record["text"]), record["id"]
            assert record["text"][entity["start"] : entity["end"]] == entity["value"], record["id"]
            assert entity["type"] in set(PiiType), record["id"]
        # And labels of one record do not overlap
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_corpus_has_the_promised_size(
    positives: list[dict[str, Any]], negatives: list[dict[str, Any]]
) -> None:
    counts = {t: 0 for t in PiiType}
    for record in positives:
        for entity in record["entities"]:
            counts[PiiType(entity["type"])] += 1
    for pii_type in (PiiType.EMAIL, PiiType.SSN, PiiType.CREDIT_CARD, PiiType.PHONE):
        assert counts[pii_type] >= 60, pii_type
    for pii_type in (PiiType.IBAN, PiiType.IP_ADDRESS, PiiType.SECRET):
        assert counts[pii_type] >= 20, pii_type
    assert len(negatives) >= 300
    assert all(not record["entities"] for record in negatives)
    assert sum(record["source"] == "handwritten" for record in positives + negatives) >= 24


@pytest.mark.parametrize("pii_type", list(RECALL_FLOORS))
def test_recall_meets_its_floor(accuracy: Accuracy, pii_type: PiiType) -> None:
    # Given the scanner's findings over the corpus (exact type and span count as a hit)
    # Then recall is at or above the floor for this type
    assert accuracy.recall()[pii_type] >= RECALL_FLOORS[pii_type]


@pytest.mark.parametrize("pii_type", list(PiiType))
def test_precision_on_planted_entities(accuracy: Accuracy, pii_type: PiiType) -> None:
    # The issue sets no precision floor for the positives; 0.95 catches a detector that starts
    # claiming the surrounding prose (a wrong span counts as one false positive and one miss).
    assert accuracy.precision().get(pii_type, 1.0) >= 0.95
    assert accuracy.recall().get(pii_type, 1.0) >= 0.9


def test_hard_negatives_raise_at_most_one_false_positive_per_hundred(accuracy: Accuracy) -> None:
    # Given snippets with numbers, ids, versions, hashes and log lines but no personal data
    # Then the scanner reports at most one finding per hundred snippets
    assert accuracy.negative_snippets >= 300
    assert accuracy.fp_per_100() <= MAX_FP_PER_100_NEGATIVES
