"""compliance.audit.merkle: tamper detection, argument validation, malformed proofs, properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    from_hex,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_leaf_hashes,
    to_hex,
    verify_consistency,
    verify_inclusion,
)


def _leaves(n: int, tag: str = "event") -> list[bytes]:
    return [leaf_hash(f"{tag}-{i}".encode()) for i in range(n)]


def _flip(value: bytes, position: int) -> bytes:
    mutated = bytearray(value)
    mutated[position] ^= 0x01
    return bytes(mutated)


# ---------------------------------------------------------------------------- hashing


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # Given / When the two hashes of the same 64 bytes
    left, right = b"\x11" * 32, b"\x22" * 32

    # Then they follow the RFC 6962 prefixes and differ
    assert leaf_hash(left + right) == hashlib.sha256(b"\x00" + left + right).digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert leaf_hash(left + right) != node_hash(left, right)


def test_root_of_data_equals_root_of_leaf_hashes() -> None:
    # Given leaf data
    data = [b"a", b"b", b"c"]

    # When hashed either way, Then the roots agree, and a 2-leaf root is one node hash
    assert root(data) == root_from_leaf_hashes([leaf_hash(d) for d in data])
    assert root(data[:2]) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert root([]) == EMPTY_ROOT


def test_root_streams_a_large_tree_without_recursion() -> None:
    # Given a generator of 2**16 + 3 leaf hashes (never materialized as a list)
    n = 2**16 + 3
    stream = (hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n))

    # When the root is computed, Then it matches the split rule MTH = node(MTH(2**16), MTH(rest))
    full = root_from_leaf_hashes(stream)
    first = root_from_leaf_hashes(
        hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(2**16)
    )
    rest = root_from_leaf_hashes(
        hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(2**16, n)
    )
    assert full == node_hash(first, rest)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "0" * 32])
def test_root_rejects_leaf_hashes_of_the_wrong_size(bad: bytes) -> None:
    # Given a leaf hash list with one malformed entry, When hashed, Then ValueError names it
    with pytest.raises(ValueError, match="leaf hash #1"):
        root_from_leaf_hashes([leaf_hash(b"x"), bad])


# ---------------------------------------------------------------------------- inclusion tampering

SIZE = 13
LEAVES = _leaves(SIZE)
ROOT = root_from_leaf_hashes(LEAVES)


@pytest.mark.parametrize("index", range(SIZE))
def test_any_flipped_byte_of_an_inclusion_proof_fails(index: int) -> None:
    # Given a valid inclusion proof
    proof = inclusion_proof(LEAVES, index, SIZE)
    assert verify_inclusion(LEAVES[index], index, SIZE, proof, ROOT)

    # When any single byte of any element is flipped, Then verification fails
    for element in range(len(proof)):
        for position in range(HASH_SIZE):
            tampered = list(proof)
            tampered[element] = _flip(proof[element], position)
            assert not verify_inclusion(LEAVES[index], index, SIZE, tampered, ROOT)


@pytest.mark.parametrize("position", range(HASH_SIZE))
def test_a_flipped_byte_of_the_leaf_or_the_root_fails_inclusion(position: int) -> None:
    # Given a valid inclusion proof
    index = 6
    proof = inclusion_proof(LEAVES, index, SIZE)

    # When the leaf hash or the root has a flipped byte, Then verification fails
    assert not verify_inclusion(_flip(LEAVES[index], position), index, SIZE, proof, ROOT)
    assert not verify_inclusion(LEAVES[index], index, SIZE, proof, _flip(ROOT, position))


def test_inclusion_fails_for_another_leaf_index_or_size() -> None:
    # Given a valid proof of leaf 5
    proof = inclusion_proof(LEAVES, 5, SIZE)

    # Then it does not prove another leaf, another position, or another tree size
    assert not verify_inclusion(LEAVES[4], 5, SIZE, proof, ROOT)
    for other_index in set(range(SIZE)) - {5}:
        assert not verify_inclusion(LEAVES[5], other_index, SIZE, proof, ROOT)
    # (sizes 9..16 give the same proof shape for leaf 5: see the checkpoint test below)
    for other_size in [*range(6, 9), *range(17, 40)]:
        assert not verify_inclusion(LEAVES[5], 5, other_size, proof, ROOT)


def test_the_tree_size_is_bound_by_the_signed_checkpoint_not_by_the_proof() -> None:
    # Given a proof of leaf 5 in the 13-leaf tree
    proof = inclusion_proof(LEAVES, 5, SIZE)

    # When verified with another size whose tree has the same shape on leaf 5's path
    # (8 < size <= 16: the last path node stands for "everything right of leaf 7")
    accepted = [size for size in range(6, 64) if verify_inclusion(LEAVES[5], 5, size, proof, ROOT)]

    # Then it verifies too, as in every RFC 6962 log: (size, root) must come from one signed checkpoint
    assert accepted == list(range(9, 17))


def test_inclusion_proof_for_a_single_leaf_tree_is_empty() -> None:
    # Given a one-leaf tree, Then its proof is empty and its root is the leaf hash
    assert inclusion_proof(LEAVES, 0, 1) == []
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 0, 1, [LEAVES[1]], LEAVES[0])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda p: p[:-1], id="truncated"),
        pytest.param(lambda p: [*p, p[0]], id="extended"),
        pytest.param(lambda p: [], id="empty"),
        pytest.param(lambda p: [p[0][:-1], *p[1:]], id="element-31-bytes"),
        pytest.param(lambda p: [p[0] + b"\x00", *p[1:]], id="element-33-bytes"),
        pytest.param(lambda p: [p[0].hex(), *p[1:]], id="element-not-bytes"),
        pytest.param(lambda p: list(reversed(p)), id="reordered"),
        pytest.param(lambda p: [b"\x00" * 32] * 40, id="very-long"),
    ],
)
def test_malformed_inclusion_proofs_return_false(mutate: object) -> None:
    # Given a malformed proof
    proof = mutate(inclusion_proof(LEAVES, 3, SIZE))  # type: ignore[operator]

    # When verified, Then it is rejected without raising
    assert verify_inclusion(LEAVES[3], 3, SIZE, proof, ROOT) is False


def test_malformed_leaf_or_root_return_false() -> None:
    proof = inclusion_proof(LEAVES, 3, SIZE)
    assert verify_inclusion(LEAVES[3][:31], 3, SIZE, proof, ROOT) is False
    assert verify_inclusion(LEAVES[3], 3, SIZE, proof, ROOT + b"\x00") is False
    assert verify_inclusion(LEAVES[3], 3, SIZE, proof, b"") is False


@pytest.mark.parametrize(
    ("index", "tree_size", "message"),
    [
        (13, 13, r"index \(13\) must be < tree_size \(13\)"),
        (20, 13, "must be < tree_size"),
        (0, 0, r"index \(0\) must be < tree_size \(0\)"),
        (-1, 13, "index must be >= 0"),
        (0, -1, "tree_size must be >= 0"),
    ],
)
def test_invalid_inclusion_arguments_raise(index: int, tree_size: int, message: str) -> None:
    # Given arguments that describe no leaf of any tree, Then both prover and verifier refuse them
    with pytest.raises(ValueError, match=message):
        verify_inclusion(LEAVES[0], index, tree_size, [], ROOT)
    with pytest.raises(ValueError, match=message):
        inclusion_proof(LEAVES, index, tree_size)


def test_inclusion_proof_refuses_a_tree_larger_than_the_leaves_given() -> None:
    with pytest.raises(ValueError, match=r"tree_size \(14\) exceeds the number of leaf hashes given \(13\)"):
        inclusion_proof(LEAVES, 0, SIZE + 1)


# ---------------------------------------------------------------------------- consistency tampering

NEW_SIZE = 21
NEW_LEAVES = [*LEAVES, *_leaves(NEW_SIZE - SIZE, "later")]
NEW_ROOT = root_from_leaf_hashes(NEW_LEAVES)


@pytest.mark.parametrize("old_size", [1, 2, 3, 4, 7, 8, 12, 13, 16, 20])
def test_any_flipped_byte_of_a_consistency_proof_or_root_fails(old_size: int) -> None:
    # Given a valid consistency proof
    old_root = root_from_leaf_hashes(NEW_LEAVES[:old_size])
    proof = consistency_proof(NEW_LEAVES, old_size, NEW_SIZE)
    assert verify_consistency(old_size, NEW_SIZE, old_root, NEW_ROOT, proof)

    # When any byte of a proof element or of either root is flipped, Then verification fails
    for position in range(HASH_SIZE):
        for element in range(len(proof)):
            tampered = list(proof)
            tampered[element] = _flip(proof[element], position)
            assert not verify_consistency(old_size, NEW_SIZE, old_root, NEW_ROOT, tampered)
        assert not verify_consistency(old_size, NEW_SIZE, _flip(old_root, position), NEW_ROOT, proof)
        assert not verify_consistency(old_size, NEW_SIZE, old_root, _flip(NEW_ROOT, position), proof)


def test_consistency_fails_for_other_sizes() -> None:
    # Given a valid proof from 13 to 21
    proof = consistency_proof(NEW_LEAVES, SIZE, NEW_SIZE)
    old_root = ROOT

    # Then it proves no pair of sizes with another proof shape; like inclusion proofs, the shape
    # only fixes the sizes up to the power-of-two brackets, so both sizes come from signed checkpoints
    accepted = [
        (old, new)
        for old in range(1, 64)
        for new in range(old, 64)
        if verify_consistency(old, new, old_root, NEW_ROOT, proof)
    ]
    assert accepted == [(13, n) for n in range(17, 33)] + [(26, n) for n in range(33, 64)]


def test_rewritten_history_fails_consistency() -> None:
    # Given a new tree whose first 13 leaves were altered (one event rewritten)
    forged = list(NEW_LEAVES)
    forged[4] = leaf_hash(b"rewritten")
    forged_root = root_from_leaf_hashes(forged)
    forged_proof = consistency_proof(forged, SIZE, NEW_SIZE)

    # When checked against the old signed root, Then the forged history is rejected
    assert not verify_consistency(SIZE, NEW_SIZE, ROOT, forged_root, forged_proof)
    assert not verify_consistency(SIZE, NEW_SIZE, ROOT, NEW_ROOT, forged_proof)  # old proof nodes differ


def test_trivial_consistency_cases() -> None:
    # Equal sizes: empty proof, equal roots
    assert consistency_proof(NEW_LEAVES, SIZE, SIZE) == []
    assert verify_consistency(SIZE, SIZE, ROOT, ROOT, [])
    assert not verify_consistency(SIZE, SIZE, ROOT, NEW_ROOT, [])
    assert not verify_consistency(SIZE, SIZE, ROOT, ROOT, [ROOT])
    # Empty old tree: empty proof, old root must be the empty-tree root
    assert consistency_proof(NEW_LEAVES, 0, NEW_SIZE) == []
    assert verify_consistency(0, NEW_SIZE, EMPTY_ROOT, NEW_ROOT, [])
    assert not verify_consistency(0, NEW_SIZE, ROOT, NEW_ROOT, [])
    assert not verify_consistency(0, NEW_SIZE, EMPTY_ROOT, NEW_ROOT, [ROOT])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda p: p[:-1], id="truncated"),
        pytest.param(lambda p: [*p, p[0]], id="extended"),
        pytest.param(lambda p: [], id="empty"),
        pytest.param(lambda p: p[1:], id="first-dropped"),
        pytest.param(lambda p: [p[0][:-1], *p[1:]], id="element-31-bytes"),
        pytest.param(lambda p: [*p[:-1], p[-1] + b"\x00"], id="element-33-bytes"),
        pytest.param(lambda p: [None, *p[1:]], id="element-not-bytes"),
        pytest.param(lambda p: list(reversed(p)), id="reordered"),
        pytest.param(lambda p: [b"\x00" * 32] * 70, id="very-long"),
    ],
)
@pytest.mark.parametrize("old_size", [4, 13])  # a power of two (old root implicit) and not
def test_malformed_consistency_proofs_return_false(mutate: object, old_size: int) -> None:
    # Given a malformed proof
    old_root = root_from_leaf_hashes(NEW_LEAVES[:old_size])
    proof = mutate(consistency_proof(NEW_LEAVES, old_size, NEW_SIZE))  # type: ignore[operator]

    # When verified, Then it is rejected without raising
    assert verify_consistency(old_size, NEW_SIZE, old_root, NEW_ROOT, proof) is False


def test_malformed_consistency_roots_return_false() -> None:
    proof = consistency_proof(NEW_LEAVES, SIZE, NEW_SIZE)
    assert verify_consistency(SIZE, NEW_SIZE, ROOT[:31], NEW_ROOT, proof) is False
    assert verify_consistency(SIZE, NEW_SIZE, ROOT, b"", proof) is False


@pytest.mark.parametrize(
    ("old_size", "new_size", "message"),
    [
        (22, 21, r"old_size \(22\) must not exceed new_size \(21\)"),
        (-1, 21, "old_size must be >= 0"),
        (0, -1, "new_size must be >= 0"),
    ],
)
def test_invalid_consistency_arguments_raise(old_size: int, new_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        verify_consistency(old_size, new_size, ROOT, NEW_ROOT, [])
    with pytest.raises(ValueError, match=message):
        consistency_proof(NEW_LEAVES, old_size, new_size)


def test_consistency_proof_refuses_a_tree_larger_than_the_leaves_given() -> None:
    with pytest.raises(ValueError, match=r"new_size \(22\) exceeds"):
        consistency_proof(NEW_LEAVES, 1, NEW_SIZE + 1)


# ---------------------------------------------------------------------------- hex helpers


def test_hex_round_trip_and_validation() -> None:
    assert from_hex(to_hex(ROOT)) == ROOT
    assert to_hex(EMPTY_ROOT) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert from_hex(to_hex(ROOT).upper()) == ROOT
    with pytest.raises(ValueError, match="64 hex characters"):
        from_hex("abcd")
    with pytest.raises(ValueError, match="hexadecimal"):
        from_hex("zz" * 32)


# ---------------------------------------------------------------------------- properties

leaf_data = st.lists(st.binary(max_size=24), min_size=1, max_size=150)


@settings(max_examples=150, deadline=None)
@given(data=leaf_data, pick=st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(data: list[bytes], pick: st.DataObject) -> None:
    # Given a random tree and a random leaf of it
    leaves = [leaf_hash(d) for d in data]
    size = pick.draw(st.integers(1, len(leaves)), label="tree_size")
    index = pick.draw(st.integers(0, size - 1), label="index")
    tree_root = root(data[:size])

    # When its inclusion proof is built, Then it verifies and has at most ceil(log2(size)) nodes
    proof = inclusion_proof(leaves, index, size)
    assert verify_inclusion(leaves[index], index, size, proof, tree_root)
    assert len(proof) <= (size - 1).bit_length()

    # And flipping one random byte of the proof, leaf or root breaks it
    target = pick.draw(st.integers(0, len(proof) + 1), label="target")
    position = pick.draw(st.integers(0, HASH_SIZE - 1), label="position")
    if target < len(proof):
        proof = [*proof[:target], _flip(proof[target], position), *proof[target + 1 :]]
        assert not verify_inclusion(leaves[index], index, size, proof, tree_root)
    elif target == len(proof):
        assert not verify_inclusion(_flip(leaves[index], position), index, size, proof, tree_root)
    else:
        assert not verify_inclusion(leaves[index], index, size, proof, _flip(tree_root, position))


@settings(max_examples=150, deadline=None)
@given(data=leaf_data, pick=st.data())
def test_every_consistency_proof_verifies_and_tampering_fails(data: list[bytes], pick: st.DataObject) -> None:
    # Given a random append-only tree and an earlier size of it
    leaves = [leaf_hash(d) for d in data]
    new_size = len(leaves)
    old_size = pick.draw(st.integers(0, new_size), label="old_size")
    old_root, new_root = root(data[:old_size]), root(data)

    # When the consistency proof is built, Then it verifies
    proof = consistency_proof(leaves, old_size, new_size)
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)

    # And flipping one random byte of a proof element or of a root breaks it
    if proof:
        target = pick.draw(st.integers(0, len(proof) - 1), label="target")
        position = pick.draw(st.integers(0, HASH_SIZE - 1), label="position")
        tampered = [*proof[:target], _flip(proof[target], position), *proof[target + 1 :]]
        assert not verify_consistency(old_size, new_size, old_root, new_root, tampered)
    position = pick.draw(st.integers(0, HASH_SIZE - 1), label="root_position")
    if old_size > 0:  # the empty tree is consistent with any tree
        assert not verify_consistency(old_size, new_size, old_root, _flip(new_root, position), proof)
        assert not verify_consistency(old_size, new_size, _flip(old_root, position), new_root, proof)


@settings(max_examples=150, deadline=None)
@given(
    old=st.integers(0, 300),
    extra=st.integers(0, 300),
    index=st.integers(0, 600),
    proof=st.lists(st.binary(min_size=0, max_size=40), max_size=12),
    first=st.binary(min_size=32, max_size=32),
    second=st.binary(min_size=32, max_size=32),
)
def test_verifiers_never_crash_on_garbage(
    old: int, extra: int, index: int, proof: list[bytes], first: bytes, second: bytes
) -> None:
    # Given arbitrary (mostly meaningless) proofs and roots for valid arguments
    new = old + extra

    # When verified, Then the verifiers answer with a bool, never an exception
    assert verify_consistency(old, new, first, second, proof) in (True, False)
    if new > 0:
        assert verify_inclusion(first, index % new, new, proof, second) in (True, False)


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.binary(max_size=16), max_size=200))
def test_root_is_order_and_content_sensitive(data: list[bytes]) -> None:
    # Given any list of leaves, When one more is appended, Then the root changes
    assert root([*data, b"appended"]) != root(data)
    # And when two different adjacent leaves are swapped, Then the root changes
    for i in range(len(data) - 1):
        if data[i] != data[i + 1]:
            swapped = [*data[:i], data[i + 1], data[i], *data[i + 2 :]]
            assert root(swapped) != root(data)
            break
