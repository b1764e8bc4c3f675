"""compliance.audit.frontier: incremental RFC 6962 roots agree with merkle.root."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.audit.frontier import Frontier
from compliance.audit.merkle import EMPTY_ROOT, leaf_hash, root


def _data(n: int) -> list[bytes]:
    return [f"event-{i}".encode() for i in range(n)]


LEAVES = _data(300)
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]


@pytest.mark.parametrize("size", range(131))
def test_the_frontier_root_is_the_merkle_root_for_every_size(size: int) -> None:
    # Given the leaves of a tree of `size` / When built leaf by leaf through the frontier
    frontier = Frontier.empty()
    for value in LEAF_HASHES[:size]:
        frontier = frontier.extended([value])
    # Then its root is RFC 6962's, it holds popcount(size) hashes, and a bulk build agrees
    assert frontier.root() == root(LEAVES[:size])
    assert frontier.size == size
    assert len(frontier.hashes) == size.bit_count()
    assert Frontier.from_leaf_hashes(LEAF_HASHES[:size]) == frontier


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_extending_in_any_split_gives_the_same_root(chunks: list[int]) -> None:
    # Given a random split of the leaves into consecutive chunks
    frontier, start = Frontier.empty(), 0
    for length in chunks:
        # When each chunk extends a frontier rebuilt from its stored form (as checkpoints do)
        stored = Frontier.of(frontier.size, list(frontier.hashes))
        frontier = stored.extended(LEAF_HASHES[start : start + length])
        start += length
        # Then after every chunk the root is that of all leaves so far
        assert frontier.root() == root(LEAVES[:start])


def test_the_empty_frontier_has_the_empty_root() -> None:
    assert Frontier.empty().root() == EMPTY_ROOT


@pytest.mark.parametrize(
    ("size", "hashes", "message"),
    [
        (3, [b"\x00" * 32], "frontier of 2 hashes"),
        (4, [b"\x00" * 32, b"\x00" * 32], "frontier of 1 hashes"),
        (1, [b"\x00" * 31], "32 bytes"),
        (-1, [], ">= 0"),
    ],
)
def test_malformed_stored_frontiers_are_refused(size: int, hashes: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Frontier.of(size, hashes)


def test_leaf_hashes_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier.empty().extended([b"short"])
