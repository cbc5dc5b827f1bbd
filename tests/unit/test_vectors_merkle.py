"""RFC 9162 Merkle vectors (../shared/vectors/merkle): every inclusion and consistency probe."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ipx.registry import merkle
from tests.conftest import SHARED

VECTORS = SHARED / "vectors" / "merkle"
REFERENCE = json.loads((VECTORS / "rfc6962_reference.json").read_text())


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))  # rglob, not glob patterns: names contain [ ] @


def _b64list(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def _reference_tree() -> tuple[list[bytes], merkle.NodeReader]:
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in REFERENCE["leaves_hex"]]
    nodes: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(leaves):
        for level, position, value in merkle.completed_nodes(index, leaf, lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, position)] = value
    return leaves, lambda level, index: nodes[(level, index)]


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_probe(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], base64.b64decode(case["leafHash"] or ""), _b64list(case["proof"]))
    root = base64.b64decode(case["root"] or "")
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args, root)
    else:
        merkle.verify_inclusion(*args, root)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_probe(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"], case["size2"], base64.b64decode(case["root1"] or ""), base64.b64decode(case["root2"] or ""),
        _b64list(case["proof"]),
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_hasher_vectors() -> None:
    operations = {
        "empty_root": lambda v: merkle.root_of_leaves([]),
        "hash_leaf": lambda v: merkle.leaf_hash(bytes.fromhex(v["leaf_hex"])),
        "hash_children": lambda v: merkle.node_hash(bytes.fromhex(v["left_hex"]), bytes.fromhex(v["right_hex"])),
    }
    for vector in REFERENCE["hasher_vectors"]:
        assert operations[vector["op"]](vector).hex() == vector["want"], vector["desc"]


def test_roots_from_stored_nodes_and_naively_agree_with_reference() -> None:
    leaves, read = _reference_tree()
    for size, root in REFERENCE["roots_by_tree_size_hex"].items():
        assert merkle.root_hash(int(size), read).hex() == root
        assert merkle.root_of_leaves(leaves[: int(size)]).hex() == root


def test_generated_proofs_equal_reference_proofs() -> None:
    _, read = _reference_tree()
    for proof in REFERENCE["inclusion_proofs"]:
        generated = merkle.inclusion_proof(proof["leaf_index"], proof["tree_size"], read)
        assert [h.hex() for h in generated] == proof["proof"]
    for proof in REFERENCE["consistency_proofs"]:
        generated = merkle.consistency_proof(proof["size1"], proof["size2"], read)
        assert [h.hex() for h in generated] == proof["proof"]


def test_every_generated_proof_verifies_up_to_64_leaves() -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(64)]
    nodes: dict[tuple[int, int], bytes] = {}
    for index, leaf in enumerate(leaves):
        for level, position, value in merkle.completed_nodes(index, leaf, lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, position)] = value
    read = lambda level, index: nodes[(level, index)]  # noqa: E731
    roots = {size: merkle.root_of_leaves(leaves[:size]) for size in range(1, 65)}
    for size in range(1, 65):
        assert merkle.root_hash(size, read) == roots[size]
        for index in range(size):
            merkle.verify_inclusion(index, size, leaves[index], merkle.inclusion_proof(index, size, read), roots[size])
        for first in range(1, size + 1):
            proof = merkle.consistency_proof(first, size, read)
            merkle.verify_consistency(first, size, roots[first], roots[size], proof)


def test_proof_requests_out_of_range_are_refused() -> None:
    _, read = _reference_tree()
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(8, 8, read)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(0, 8, read)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(5, 4, read)



def test_a_negative_index_is_no_leaf_of_any_tree() -> None:
    """Python's `>>` on a negative number walked index - 2**len(proof) down the genuine index's path to its root."""
    leaves, read = _reference_tree()
    size, index = len(leaves), 4
    proof = merkle.inclusion_proof(index, size, read)
    root = merkle.root_hash(size, read)
    merkle.verify_inclusion(index, size, leaves[index], proof, root)
    for alias in (index - 2 ** len(proof), -1):
        with pytest.raises(merkle.ProofError, match="not within the tree"):
            merkle.verify_inclusion(alias, size, leaves[index], proof, root)
