"""A synthetic C2SP log for the witness tests: real Merkle roots and consistency proofs, checkpoints signed as notes
by the log's own key, and a second history under the same key to fork it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipx.registry import merkle
from ipx.registry.note import Checkpoint, NoteVerifier, sign_note
from ipx.witness.protocol import render_request


@dataclass
class SyntheticLog:
    origin: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    history: str = "main"  # another history under the same key is a fork

    @property
    def vkey(self) -> str:
        return NoteVerifier(self.origin, self.key.public_key()).vkey

    def leaves(self, size: int) -> list[bytes]:
        return [merkle.leaf_hash(f"{self.history} entry {i}".encode()) for i in range(size)]

    def root(self, size: int) -> bytes:
        return merkle.root_of_leaves(self.leaves(size))

    def checkpoint(self, size: int, key: Ed25519PrivateKey | None = None) -> str:
        body = Checkpoint(self.origin, size, self.root(size)).body()
        return sign_note(body, self.origin, key or self.key)

    def proof(self, first: int, second: int) -> list[bytes]:
        leaves = self.leaves(second)

        def read(level: int, index: int) -> bytes:
            return merkle.root_of_leaves(leaves[index << level:(index + 1) << level])

        return merkle.consistency_proof(first, second, read) if 0 < first < second else []

    def request(self, old: int, size: int) -> bytes:
        """The add-checkpoint body a log sends to move a witness from `old` to `size`."""
        return render_request(old, self.proof(old, size), self.checkpoint(size))

    def forked(self) -> SyntheticLog:
        return SyntheticLog(self.origin, self.key, history="fork")
