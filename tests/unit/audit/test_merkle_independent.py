"""compliance.audit.merkle against an independent RFC 6962 / RFC 9162 reference.

The reference side below is written straight from the RFC text (recursive definitions of MTH,
PATH, PROOF/SUBPROOF in RFC 6962 §2.1, verification algorithms of RFC 9162 §2.1.3.2 and
§2.1.4.2) and imports nothing from production code, so a shared misreading cannot hide.
"""

from __future__ import annotations

import hashlib

import pytest

from compliance.audit import merkle

# ------------------------------------------------------------------ reference (RFC text)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_leaf(d: bytes) -> bytes:
    # RFC 6962 §2.1: MTH({d(0)}) = SHA-256(0x00 || d(0))
    return _sha256(b"\x00" + d)


def ref_k(n: int) -> int:
    # "k be the largest power of two smaller than n (i.e., k < n <= 2k)"
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*, recursively as defined in RFC 6962 §2.1."""
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return ref_leaf(d[0])
    k = ref_k(n)
    return _sha256(b"\x01" + ref_mth(d[0:k]) + ref_mth(d[k:n]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1."""
    n = len(d)
    if n == 1 and m == 0:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[0:k]), ref_mth(d[k:n])]
    return [*ref_path(m - k, d[k:n]), ref_mth(d[0:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[0:k], b), ref_mth(d[k:n])]
    return [*ref_subproof(m - k, d[k:n], False), ref_mth(d[0:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true), 0 < m < n."""
    return ref_subproof(m, d, True)


def _hash_children(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def ref_verify_inclusion(
    leaf_index: int, tree_size: int, hash_: bytes, inclusion_path: list[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    # 1.
    if leaf_index >= tree_size:
        return False
    # 2.
    fn, sn = leaf_index, tree_size - 1
    # 3.
    r = hash_
    # 4.
    for p in inclusion_path:
        # a.
        if sn == 0:
            return False
        # b.
        if fn % 2 == 1 or fn == sn:
            r = _hash_children(p, r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            r = _hash_children(r, p)
        # c.
        fn //= 2
        sn //= 2
    # 5.
    return sn == 0 and r == root_hash


def ref_verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, consistency_path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, step by step (0 < first < second)."""
    # 1.
    if len(consistency_path) == 0:
        return False
    # 2.
    path = list(consistency_path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # a.
        if sn == 0:
            return False
        # b.
        if fn % 2 == 1 or fn == sn:
            fr = _hash_children(c, fr)
            sr = _hash_children(c, sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            sr = _hash_children(sr, c)
        # c.
        fn //= 2
        sn //= 2
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0


# ------------------------------------------------------------------ fixtures

MAX_SIZE = 64
DATA = [f"audit-event-{i}".encode() for i in range(MAX_SIZE)]
LEAF_HASHES = [ref_leaf(d) for d in DATA]
REF_ROOTS = {n: ref_mth(DATA[:n]) for n in range(MAX_SIZE + 1)}


# ------------------------------------------------------------------ the reference itself


def test_reference_reproduces_the_rfc_6962_worked_examples() -> None:
    # Given the 7-leaf example tree of RFC 6962 §2.1.3, named with the RFC's letters
    #             hash
    #         k          l
    #       g   h      i   j
    #      a b c d    e f  |
    #     d0 d1 d2 d3 d4 d5 d6
    d = DATA[:7]
    a, b, c, dd, e, f, j = (ref_leaf(x) for x in d)
    g, h, i = _hash_children(a, b), _hash_children(c, dd), _hash_children(e, f)
    k, l_ = _hash_children(g, h), _hash_children(i, j)

    # Then the reference gives the RFC's root, audit paths (§2.1.3) and consistency proofs (§2.1.4)
    assert ref_mth(d) == _hash_children(k, l_)
    assert ref_path(0, d) == [b, h, l_]
    assert ref_path(3, d) == [c, g, l_]
    assert ref_path(4, d) == [f, j, k]
    assert ref_path(6, d) == [i, k]
    assert ref_proof(3, d) == [c, dd, g, l_]
    assert ref_proof(4, d) == [l_]
    assert ref_proof(6, d) == [i, j, k]


# ------------------------------------------------------------------ roots


def test_empty_tree_root_is_sha256_of_the_empty_string() -> None:
    expected = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert expected == merkle.EMPTY_ROOT
    assert merkle.root([]) == expected
    assert merkle.root_from_leaf_hashes([]) == expected
    assert ref_mth([]) == expected


# The 8-leaf test vectors published with the Certificate Transparency reference implementations
# (certificate-transparency-go / transparency-dev merkle test data).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Interior nodes by the half-open leaf range they cover ("2..4" = MTH(D[2:4])), leaves by index.
CT_NODES = {
    "leaf1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "leaf4": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "2..4": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "4..8": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "6..8": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "0..4": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4..6": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}


def _hx(*names: str) -> list[bytes]:
    return [bytes.fromhex(CT_NODES[name]) for name in names]


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_root_vectors(n: int) -> None:
    assert ref_mth(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]
    assert merkle.to_hex(merkle.root(CT_LEAVES[:n])) == CT_ROOTS[n - 1]


@pytest.mark.parametrize(
    ("index", "size", "expected"),
    [
        (0, 8, ("leaf1", "2..4", "4..8")),
        (5, 8, ("leaf4", "6..8", "0..4")),
        (0, 1, ()),
    ],
)
def test_ct_inclusion_vectors(index: int, size: int, expected: tuple[str, ...]) -> None:
    leaf_hashes = [merkle.leaf_hash(d) for d in CT_LEAVES[:size]]
    assert ref_path(index, CT_LEAVES[:size]) == _hx(*expected)
    assert merkle.inclusion_proof(leaf_hashes, index, size) == _hx(*expected)
    root = bytes.fromhex(CT_ROOTS[size - 1])
    assert merkle.verify_inclusion(leaf_hashes[index], index, size, _hx(*expected), root)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (1, 8, ("leaf1", "2..4", "4..8")),
        (6, 8, ("4..6", "6..8", "0..4")),
        (2, 5, ("2..4", "leaf4")),
    ],
)
def test_ct_consistency_vectors(old: int, new: int, expected: tuple[str, ...]) -> None:
    leaf_hashes = [merkle.leaf_hash(d) for d in CT_LEAVES[:new]]
    assert ref_proof(old, CT_LEAVES[:new]) == _hx(*expected)
    assert merkle.consistency_proof(leaf_hashes, old, new) == _hx(*expected)
    old_root, new_root = bytes.fromhex(CT_ROOTS[old - 1]), bytes.fromhex(CT_ROOTS[new - 1])
    assert merkle.verify_consistency(old, new, old_root, new_root, _hx(*expected))
    assert ref_verify_consistency(old, new, old_root, new_root, _hx(*expected))


@pytest.mark.parametrize("n", range(MAX_SIZE + 1))
def test_root_matches_reference(n: int) -> None:
    assert merkle.root(DATA[:n]) == REF_ROOTS[n]
    assert merkle.root_from_leaf_hashes(LEAF_HASHES[:n]) == REF_ROOTS[n]
    assert merkle.root_from_leaf_hashes(iter(LEAF_HASHES[:n])) == REF_ROOTS[n]


# ------------------------------------------------------------------ inclusion


@pytest.mark.parametrize("n", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_match_reference_for_every_index(n: int) -> None:
    for m in range(n):
        ref = ref_path(m, DATA[:n])
        # Production proofs equal the reference, from an exact or a longer leaf list
        assert merkle.inclusion_proof(LEAF_HASHES[:n], m, n) == ref
        assert merkle.inclusion_proof(LEAF_HASHES, m, n) == ref
        # Both verifiers accept it
        assert ref_verify_inclusion(m, n, LEAF_HASHES[m], ref, REF_ROOTS[n])
        assert merkle.verify_inclusion(LEAF_HASHES[m], m, n, ref, REF_ROOTS[n])
        # And both reject it at a neighbouring or edge index of the same tree
        for other in {0, m - 1, m + 1, n - 1} & set(range(n)) - {m}:
            if LEAF_HASHES[other] != LEAF_HASHES[m]:
                assert not merkle.verify_inclusion(LEAF_HASHES[m], other, n, ref, REF_ROOTS[n])
                assert not ref_verify_inclusion(other, n, LEAF_HASHES[m], ref, REF_ROOTS[n])


# ------------------------------------------------------------------ consistency


@pytest.mark.parametrize("n", range(1, MAX_SIZE + 1))
def test_consistency_proofs_match_reference_for_every_pair(n: int) -> None:
    for m in range(1, n):
        ref = ref_proof(m, DATA[:n])
        assert merkle.consistency_proof(LEAF_HASHES[:n], m, n) == ref
        assert merkle.consistency_proof(LEAF_HASHES, m, n) == ref
        assert ref_verify_consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], ref)
        assert merkle.verify_consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], ref)
        # The proof does not verify a neighbouring or edge old size (both verifiers agree)
        for other_m in {1, m - 1, m + 1, n - 1} & set(range(1, n)) - {m}:
            assert not merkle.verify_consistency(other_m, n, REF_ROOTS[other_m], REF_ROOTS[n], ref)
            assert not ref_verify_consistency(other_m, n, REF_ROOTS[other_m], REF_ROOTS[n], ref)


@pytest.mark.parametrize("n", range(0, MAX_SIZE + 1))
def test_trivial_consistency_cases(n: int) -> None:
    # old_size == new_size and old_size == 0: empty proofs, outside the RFC's 0 < m < n
    assert merkle.consistency_proof(LEAF_HASHES[:n], n, n) == []
    assert merkle.consistency_proof(LEAF_HASHES[:n], 0, n) == []
    assert merkle.verify_consistency(n, n, REF_ROOTS[n], REF_ROOTS[n], [])
    assert merkle.verify_consistency(0, n, REF_ROOTS[0], REF_ROOTS[n], [])


def test_production_and_reference_verifiers_agree_on_mutated_proofs() -> None:
    # Given every consistency proof up to 24 leaves, truncated, extended, or with one node dropped
    for n in range(2, 25):
        for m in range(1, n):
            good = ref_proof(m, DATA[:n])
            variants = [good[:-1], [*good, good[0]], good[1:], [*good[:1], *good]]
            for variant in variants:
                # Then both verifiers reach the same verdict
                assert merkle.verify_consistency(
                    m, n, REF_ROOTS[m], REF_ROOTS[n], variant
                ) == ref_verify_consistency(m, n, REF_ROOTS[m], REF_ROOTS[n], variant)
