"""Everything an account holds at IPX as one ZIP to keep: its registered files with their evidence bundles, the
licenses it holds (and the files they deliver), IPX's published keys and the log's checkpoint.

The promise of a registration is that it can be proven even if IPX is gone; that holds only for evidence kept
outside IPX, so a creator can take all of it at once, with the instructions to check it (GDPR article 20 asks the
same of any service holding a person's data). Everything read from the database is read here, in the request;
the files themselves are read from the blob store only as the archive is sent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ipx.accounts.service import Principal
from ipx.archive.zipstream import Member
from ipx.blobs import BlobStore
from ipx.db import utcnow
from ipx.errors import Gone, LegallyWithheld
from ipx.marketplace import service as marketplace_service
from ipx.marketplace import terms
from ipx.registry import log
from ipx.registry import service as registry_service
from ipx.registry.downloads import checked_pieces
from ipx.registry.scan import report_row
from ipx.registry.service import RegistryContext, StoredFile, rfc3339

KEYS_NAME = "ipx-keys.json"

README = """IPX evidence archive of {display_name} (account {account_id})
Made {made_at} by {public_url}

With this archive you can prove, without IPX and even if IPX is gone, that each of your works existed,
registered by your account, no later than the time its statement gives. Keep it with your files.

  works.csv                      every work you registered ({work_count}), one per line
  works/<work id>/<your file>    the registered file, byte for byte as you uploaded it
  works/<work id>/ipx-evidence-<work id>.json
                                 its evidence bundle: the statement IPX signed (Ed25519) and the proof that
                                 it sits in IPX's public, append-only transparency log
  licenses.csv                   the licenses you hold ({license_count}), one per line
  licenses/<license id>/         each license's evidence bundle (a revoked license's carries its revocation)
                                 and, while the license delivers it, the licensed work's file
  {keys_name}                  IPX's signing keys, current and retired, with the time each was in use
  checkpoint.txt                 the log's signed checkpoint (size and root hash) the bundles are proven against

To check a work with IPX's command-line tool (pip install ipx, or from its source):

  ipx verify works/<id>/ipx-evidence-<id>.json "works/<id>/<your file>" --keys {keys_name}

Without IPX's software, any language with SHA-256, base64 and Ed25519 checks a bundle:
  1. the statement's Ed25519 signature (RFC 8032), over the statement's RFC 8785 canonical JSON, verifies
     with the bundle's key;
  2. that key, and the checkpoint's, are listed in {keys_name} (key id = hex SHA-256 of the raw 32-byte
     public key), and the statement's time (registered_at, issued_at or revoked_at, by its type) lies in
     the key's window, valid_from to valid_until;
  3. the log leaf hash is SHA-256(0x00 || canonical statement) (RFC 9162);
  4. the checkpoint is a C2SP signed note by that key, and the inclusion proof leads from the leaf at its
     index to the checkpoint's root hash (RFC 9162 section 2.1.3.2);
  5. the file's SHA-256 equals the statement's sha256 (a license's work_sha256);
  6. where a bundle carries an RFC 3161 "timestamp", the token verifies against the root certificates of
     the authority named in {keys_name} (timestamp_authority): openssl ts -verify does it.
IPX's documentation (docs/verify.md in its source) gives a complete script of about 60 lines.
"""


@dataclass(frozen=True)
class EvidenceArchive:
    filename: str
    made_at: datetime
    members: Iterator[Member]  # lazy: stored files are read as the archive is sent


@dataclass(frozen=True)
class _Kept:
    """A work or license as the archive keeps it: its folder, bundle, file (or why there is none) and CSV row."""

    folder: str
    bundle_name: str
    bundle: bytes
    file: StoredFile | None
    row: dict[str, Any]


def evidence_archive(session: Session, account: Principal, registry: RegistryContext) -> EvidenceArchive:
    made_at = utcnow()
    witnesses = registry.witness_names
    works = [_kept_work(session, work, witnesses) for work in registry_service.works_of(session, account.id)]
    held = marketplace_service.licenses_of(session, account.id)
    delivered = marketplace_service.license_deliveries(session, held, today=made_at.date())
    licenses = [_kept_license(session, row, delivered[row.id], witnesses) for row in held]
    readme = README.format(display_name=account.display_name, account_id=account.id, made_at=rfc3339(made_at),
                           public_url=registry.public_url, work_count=len(works), license_count=len(licenses),
                           keys_name=KEYS_NAME)
    head = [
        Member("README.txt", readme.encode()),
        Member(KEYS_NAME, _json(registry_service.published_keys_document(
            session, registry.timestamp_authority, registry.witness_policy))),
        Member("checkpoint.txt", log.cosigned_note(session, log.latest_checkpoint(session)).encode()),
        Member("works.csv", _csv([kept.row for kept in works], WORK_COLUMNS)),
        Member("licenses.csv", _csv([kept.row for kept in licenses], LICENSE_COLUMNS)),
    ]
    return EvidenceArchive(
        filename=f"ipx-evidence-{made_at:%Y-%m-%d}.zip", made_at=made_at,
        members=_members(head, [*works, *licenses], registry.blobs),
    )


WORK_COLUMNS = ("work_id", "title", "registered_at", "log_index", "status", "sha256", "size", "media_type", "file",
                "evidence")
LICENSE_COLUMNS = ("license_id", "status", "work_id", "work_title", "licensor", "issued_at", "revoked_at", "terms",
                   "file", "evidence")


def _kept_work(session: Session, work: Any, witnesses: Collection[str]) -> _Kept:
    folder, bundle_name = f"works/{work.id}", f"ipx-evidence-{work.id}.json"
    stored = registry_service.stored_file(work)
    return _Kept(folder, bundle_name, _json(registry_service.work_evidence(session, work, witnesses)), stored, {
        "work_id": work.id, "title": work.title, "registered_at": rfc3339(work.registered_at),
        "log_index": work.log_index, "status": work.status, "sha256": work.sha256, "size": work.size,
        "media_type": work.media_type, "file": f"{folder}/{stored.filename}", "evidence": f"{folder}/{bundle_name}",
    })


def _kept_license(
    session: Session, row: Any, delivered: StoredFile | Gone | LegallyWithheld, witnesses: Collection[str]
) -> _Kept:
    """A license the account holds, with the file it delivers now, or the refusal as the CSV's note."""
    folder, bundle_name = f"licenses/{row.id}", f"ipx-license-{row.id}.json"
    kept_file: StoredFile | None
    if isinstance(delivered, (Gone, LegallyWithheld)):
        kept_file, file_note = None, f"not included: {delivered.detail}"
    else:
        kept_file, file_note = delivered, f"{folder}/{delivered.filename}"
    work = registry_service.get_work(session, row.work_id)
    return _Kept(folder, bundle_name, _json(marketplace_service.license_evidence(session, row, witnesses)), kept_file, {
        "license_id": row.id, "status": row.status, "work_id": row.work_id, "work_title": work.title,
        "licensor": registry_service.owner_of(session, work).display_name, "issued_at": rfc3339(row.issued_at),
        "revoked_at": rfc3339(row.revoked_at) if row.revoked_at else "",
        "terms": terms.summary(terms.LicenseTerms.model_validate(row.terms)), "file": file_note,
        "evidence": f"{folder}/{bundle_name}",
    })


def _members(head: Sequence[Member], kept: Sequence[_Kept], blobs: BlobStore) -> Iterator[Member]:
    """The archive's members in order; each stored file is opened when its turn comes, checked against its SHA-256
    as it is read (a damaged file cuts the archive off rather than passing as the registered one)."""
    yield from head
    for item in kept:
        yield Member(f"{item.folder}/{item.bundle_name}", item.bundle)
        if item.file is None:
            continue
        try:
            pieces = blobs.chunks(item.file.sha256)
        except FileNotFoundError:
            yield Member(f"{item.folder}/FILE-MISSING.txt", b"IPX could not find this file in its storage when the "
                         b"archive was made; the evidence bundle beside it is unaffected. Please tell IPX staff.\n")
            continue
        path = f"{item.folder}/{item.file.filename}"
        yield Member(path, size=item.file.size, pieces=checked_pieces(pieces, item.file.sha256, item.file.size))


def _json(document: Any) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False, default=datetime.isoformat).encode()


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """Titles and names typed by others are shown as text by spreadsheets, never run as formulas (see report_row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(report_row(row[column] for column in columns) for row in rows)
    return ("\ufeff" + out.getvalue()).encode()  # the byte-order mark makes spreadsheet programs read UTF-8
