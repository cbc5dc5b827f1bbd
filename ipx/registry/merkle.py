"""RFC 9162 Merkle tree hashing, proofs and proof verification.

Proof *generation* reads perfect-subtree hashes through a callback, so the log can serve proofs from
stored nodes in O(log n) reads without ever rehashing the whole log. Verification is written from
RFC 9162 sections 2.1.3.2 and 2.1.4.2 and raises `ProofError` with the reason, not just False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of the perfect subtree covering leaves [index << level, (index + 1) << level)
NodeReader = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A Merkle proof does not verify; the message says which check failed."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def completed_nodes(index: int, leaf: bytes, left_sibling: NodeReader) -> list[tuple[int, int, bytes]]:
    """The perfect-subtree nodes that appending leaf hash `leaf` at `index` completes, bottom up.

    Appending leaf i completes one node per trailing 1-bit of i, each needing its already-stored left
    sibling: this is what keeps appends O(log n).
    """
    nodes = [(0, index, leaf)]
    level, position, current = 0, index, leaf
    while position & 1:
        current = node_hash(left_sibling(level, position - 1), current)
        level, position = level + 1, position >> 1
        nodes.append((level, position, current))
    return nodes


def subtree_hash(start: int, end: int, read: NodeReader) -> bytes:
    """MTH(D[start:end]) for a range that is a left-aligned subtree of some tree, from stored nodes."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return read(level, start >> level)
    k = largest_power_of_two_below(size)
    return node_hash(subtree_hash(start, start + k, read), subtree_hash(start + k, end, read))


def root_hash(size: int, read: NodeReader) -> bytes:
    return subtree_hash(0, size, read)


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 PATH(index, D[0:size]), leaf level first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = largest_power_of_two_below(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end, read))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, read))
            start += k
    return proof[::-1]


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 PROOF(first, D[0:second])."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    m, start, end, complete = first, 0, second, True
    while end - start != m or not complete:
        if end - start == m:  # reached the old tree's subtree but it was not a complete earlier root
            proof.append(subtree_hash(start, end, read))
            break
        k = largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(subtree_hash(start + k, end, read))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, read))
            start, m, complete = start + k, m - k, False
    return proof[::-1]


def root_of_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over in-memory leaf hashes by plain recursion: the naive baseline, for tests and benchmarks."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(len(leaf_hashes))
    return node_hash(root_of_leaves(leaf_hashes[:k]), root_of_leaves(leaf_hashes[k:]))


def _check_hashes(proof: Sequence[bytes]) -> None:
    for position, item in enumerate(proof):
        if len(item) != HASH_SIZE:
            raise ProofError(f"proof element {position} is {len(item)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root that `proof` implies for leaf hash `leaf` at `index`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not within the tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof)
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return result


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof leads to a different root hash than the checkpoint's")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: the tree of size `second` extends the tree of size `first`."""
    if first == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if first > second:
        raise ProofError(f"first size {first} is larger than second size {second}")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        if first_root != second_root:
            raise ProofError("equal sizes but the roots differ")
        return
    if not proof:
        raise ProofError("different sizes need a non-empty consistency proof")
    _check_hashes(proof)
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first_hash = second_hash = path[0]
    for sibling in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            first_hash = node_hash(sibling, first_hash)
            second_hash = node_hash(sibling, second_hash)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second_hash = node_hash(second_hash, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if first_hash != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if second_hash != second_root:
        raise ProofError("consistency proof does not lead to the second root")
