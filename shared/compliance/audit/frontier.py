"""Incremental RFC 6962 roots: the frontier (compact range) of a Merkle tree.

The frontier of a tree of ``size`` leaves is the list of roots of the perfect subtrees given by
the binary decomposition of ``size``, left to right (largest first): for 13 = 8 + 4 + 1 it is
``[MTH(D[0:8]), MTH(D[8:12]), MTH(D[12:13])]``. It has ``popcount(size)`` hashes (at most 53 for
a chain of 2**53 - 1 events), and it is all that is needed to

* compute the tree's root (:meth:`Frontier.root`, the same value as
  :func:`compliance.audit.merkle.root_from_leaf_hashes` over every leaf), and
* extend the tree with more leaf hashes (:meth:`Frontier.extended`) without reading the old ones.

Each checkpoint stores its frontier, so the next checkpoint hashes only the events appended since.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from compliance.audit.merkle import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["Frontier"]


@dataclass(frozen=True, slots=True)
class Frontier:
    """The compact range ``[0, size)``: ``hashes`` are the perfect-subtree roots, largest first."""

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("a tree size is >= 0")
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a tree of {self.size} leaves has a frontier of {self.size.bit_count()} hashes")
        if not all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in self.hashes):
            raise ValueError(f"frontier hashes are {HASH_SIZE} bytes")

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, ())

    @classmethod
    def of(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """A stored frontier (validated: ``popcount(size)`` hashes of 32 bytes)."""
        return cls(size, tuple(hashes))

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> Frontier:
        return cls.empty().extended(leaf_hashes)

    def extended(self, leaf_hashes: Iterable[bytes]) -> Frontier:
        """The frontier after appending ``leaf_hashes`` (each ``leaf_hash(data)``, 32 bytes), in order.

        O(1) amortised node hashes per leaf, O(log n) memory; streams its input.
        """
        # (height, hash) pairs, heights strictly decreasing: the set bits of the size.
        heights = [bit for bit in range(self.size.bit_length() - 1, -1, -1) if self.size >> bit & 1]
        stack = list(zip(heights, self.hashes, strict=True))
        size = self.size
        for value in leaf_hashes:
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise ValueError(f"leaf hash #{size} must be {HASH_SIZE} bytes")
            height, current = 0, value
            while stack and stack[-1][0] == height:
                current = node_hash(stack.pop()[1], current)
                height += 1
            stack.append((height, current))
            size += 1
        return Frontier(size, tuple(h for _, h in stack))

    def root(self) -> bytes:
        """The RFC 6962 Merkle Tree Hash of the ``size`` leaves."""
        if not self.hashes:
            return EMPTY_ROOT
        # MTH splits at the largest power of two: smaller subtrees hang to the right.
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc
