"""RFC 6962 / RFC 9162 Merkle tree core: tree hashes, inclusion and consistency proofs, verifiers.

Pure functions over bytes, standard library only (``hashlib``). No I/O: callers feed the leaf
hashes (the audit table stores them) and publish what comes out.

Format (what a third party needs to verify offline with any RFC 6962 implementation)
-------------------------------------------------------------------------------------
* Hash function: SHA-256; every hash is exactly 32 raw bytes (64 lowercase hex characters
  when rendered by :func:`to_hex`).
* Leaf hash:     ``SHA-256(0x00 || leaf_data)``  (RFC 6962 §2.1, domain separated from nodes).
* Node hash:     ``SHA-256(0x01 || left || right)``.
* Tree hash (MTH, RFC 6962 §2.1) over leaves ``d[0..n-1]`` in append order:

  - ``MTH({}) = SHA-256("")`` (``e3b0c442...b855``), the root of the empty tree;
  - ``MTH({d0}) = leaf_hash(d0)``;
  - for ``n > 1``, with ``k`` the largest power of two strictly smaller than ``n``:
    ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``.

* Inclusion proof for leaf ``index`` (0-based) in a tree of ``tree_size`` leaves: the audit path
  ``PATH(index, D[tree_size])`` of RFC 6962 §2.1.1, a list of 32-byte node hashes ordered from the
  leaf's sibling up to the child of the root (RFC 9162 ``inclusion_path``). Verified with the
  algorithm of RFC 9162 §2.1.3.2 (:func:`verify_inclusion`).
* Consistency proof from ``old_size`` to ``new_size``: ``PROOF(old_size, D[new_size])`` of
  RFC 6962 §2.1.2 (SUBPROOF with ``b = true``), ordered as in the RFC (RFC 9162
  ``consistency_path``). Verified with the algorithm of RFC 9162 §2.1.4.2
  (:func:`verify_consistency`). Two trivial cases the RFC leaves undefined follow the usual
  convention (e.g. Sigsum, transparency-dev): ``old_size == new_size`` has the empty proof and
  requires equal roots; ``old_size == 0`` has the empty proof and requires ``old_root`` to be
  the empty-tree root.

Trust model: a proof binds the leaf (or the old root) to the root it is checked against, not to
the tree *size* -- a size in the same power-of-two bracket can give the same proof shape, as in
every RFC 6962 log. Sizes and roots must therefore be taken together from one signed checkpoint.

Error model: invalid *arguments* (negative sizes, ``index >= tree_size``, ``old_size > new_size``,
more leaves asked for than given, leaf hashes that are not 32 bytes when building) raise
:class:`ValueError`; a malformed or wrong *proof* (wrong length, elements that are not 32 bytes,
wrong hashes, wrong roots) makes a verifier return ``False`` and never raises.

Cost: :func:`root_from_leaf_hashes` streams its input in O(n) time and O(log n) extra memory;
proof construction is O(n) hashing over the first ``tree_size`` leaves (no caching of interior
nodes here: that belongs to the storage layer if it becomes necessary). Nothing recurses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "consistency_proof",
    "from_hex",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_leaf_hashes",
    "to_hex",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
"""Size in bytes of every hash (leaf hash, node hash, root, proof element)."""

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string."""


# ---------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the RFC 6962 hash of one leaf's data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the RFC 6962 hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root(leaves: Iterable[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 6962 §2.1) of the leaf *data* ``leaves``, in order."""
    return root_from_leaf_hashes(leaf_hash(data) for data in leaves)


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Merkle Tree Hash of a tree whose leaf hashes (``leaf_hash(d)``) are given, in order.

    Streams its input (any iterable, e.g. a database cursor): O(n) time, O(log n) memory.
    Raises ``ValueError`` if an element is not a 32-byte ``bytes``.
    """
    # Stack of complete subtrees (height, hash), strictly decreasing heights from bottom to
    # top: the binary decomposition of the number of leaves seen so far.
    stack: list[tuple[int, bytes]] = []
    for position, value in enumerate(leaf_hashes):
        _check_hash(value, f"leaf hash #{position}")
        height, current = 0, value
        while stack and stack[-1][0] == height:
            current = node_hash(stack.pop()[1], current)
            height += 1
        stack.append((height, current))
    if not stack:
        return EMPTY_ROOT
    # Fold the incomplete right edge: MTH splits at the largest power of two, so the
    # smaller subtrees hang to the right of the bigger ones.
    acc = stack.pop()[1]
    while stack:
        acc = node_hash(stack.pop()[1], acc)
    return acc


# ---------------------------------------------------------------------------- proofs


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """Audit path ``PATH(index, D[tree_size])`` (RFC 6962 §2.1.1) over the first ``tree_size``.

    ``leaf_hashes`` may hold more leaves than ``tree_size`` (a later tree): only the first
    ``tree_size`` are used. Raises ``ValueError`` unless ``0 <= index < tree_size <=
    len(leaf_hashes)``.
    """
    _check_tree_size(tree_size, len(leaf_hashes), "tree_size")
    _check_index(index, tree_size)
    path: list[bytes] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        split = lo + _split_point(hi - lo)
        if index < split:
            path.append(_subtree_root(leaf_hashes, split, hi))
            hi = split
        else:
            path.append(_subtree_root(leaf_hashes, lo, split))
            lo = split
    path.reverse()  # RFC order: from the leaf's sibling up to the root's child
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Consistency proof ``PROOF(old_size, D[new_size])`` (RFC 6962 §2.1.2).

    Empty when ``old_size == 0`` or ``old_size == new_size`` (nothing to prove). Raises
    ``ValueError`` unless ``0 <= old_size <= new_size <= len(leaf_hashes)``.
    """
    _check_size(old_size, "old_size")
    _check_tree_size(new_size, len(leaf_hashes), "new_size")
    if old_size > new_size:
        raise ValueError(f"old_size ({old_size}) must not exceed new_size ({new_size})")
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[lo:hi], b) unrolled: each step appends one subtree hash *after* the
    # recursive part, so collect them top-down and emit them reversed.
    tail: list[bytes] = []
    m, lo, hi, complete = old_size, 0, new_size, True
    while m != hi - lo:
        split = lo + _split_point(hi - lo)
        if m <= split - lo:
            tail.append(_subtree_root(leaf_hashes, split, hi))
            hi = split
        else:
            tail.append(_subtree_root(leaf_hashes, lo, split))
            m -= split - lo
            lo = split
            complete = False
    # SUBPROOF(m, D[m], true) = {} ; SUBPROOF(m, D[m], false) = {MTH(D[m])}
    proof = [] if complete else [_subtree_root(leaf_hashes, lo, hi)]
    proof.extend(reversed(tail))
    return proof


# ---------------------------------------------------------------------------- verifiers


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows the leaf hash ``leaf_hash`` at ``index`` in the tree ``root``.

    RFC 9162 §2.1.3.2. Raises ``ValueError`` for invalid arguments (negative values,
    ``index >= tree_size``); returns ``False`` for any malformed or wrong proof.
    """
    _check_size(tree_size, "tree_size")
    _check_index(index, tree_size)
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False  # proof too long
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``new_root`` (``new_size``) extends ``old_root`` (``old_size``).

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``; for ``old_size == new_size`` the proof must
    be empty and the roots equal; for ``old_size == 0`` the proof must be empty and ``old_root``
    the empty-tree root. Raises ``ValueError`` for invalid arguments (negative sizes,
    ``old_size > new_size``); returns ``False`` for any malformed or wrong proof.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size:
        raise ValueError(f"old_size ({old_size}) must not exceed new_size ({new_size})")
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if old_size == 0:
        return len(proof) == 0 and old_root == EMPTY_ROOT
    # 1. An empty path proves nothing.
    if not proof:
        return False
    # 2. If old_size is an exact power of 2, the old root is the first node of the path.
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    # 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            return False  # proof too long
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    return sn == 0 and fr == old_root and sr == new_root


# ---------------------------------------------------------------------------- hex helpers


def to_hex(value: bytes) -> str:
    """Lowercase hex of a hash (the published textual form)."""
    return value.hex()


def from_hex(text: str) -> bytes:
    """Parse a published hash: exactly 64 hex characters. Raises ``ValueError`` otherwise."""
    if len(text) != 2 * HASH_SIZE:
        raise ValueError(f"a hash is {2 * HASH_SIZE} hex characters, got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("a hash must be hexadecimal") from None


# ---------------------------------------------------------------------------- internals


def _split_point(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of ``leaf_hashes[lo:hi]`` without copying the slice."""
    return root_from_leaf_hashes(leaf_hashes[i] for i in range(lo, hi))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _check_hash(value: object, what: str) -> None:
    if not _is_hash(value):
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


def _check_size(size: int, name: str) -> None:
    if size < 0:
        raise ValueError(f"{name} must be >= 0, got {size}")


def _check_tree_size(size: int, available: int, name: str) -> None:
    _check_size(size, name)
    if size > available:
        raise ValueError(f"{name} ({size}) exceeds the number of leaf hashes given ({available})")


def _check_index(index: int, tree_size: int) -> None:
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    if index >= tree_size:
        raise ValueError(f"index ({index}) must be < tree_size ({tree_size})")
