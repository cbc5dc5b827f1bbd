"""The `ipx` command: serve, migrate, manage users and keys, verify evidence offline."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ipx.complaints import cli as complaints_cli
from ipx.config import get_settings
from ipx.stats import cli as stats_cli

if TYPE_CHECKING:
    from ipx.registry.monitor import LogInconsistent
    from ipx.registry.witnesses import WitnessPolicy

# uvicorn kills a worker that does not answer its supervisor's ping within this many seconds (its default, 5, is
# short enough for a busy machine to cost a worker, and with it every request the worker had in hand)
WORKER_HEALTHCHECK_SECONDS = 60
# An idle connection is kept this long, longer than clients keep theirs (httpx and requests: 5 s, uvicorn's own
# default): at equal times a client can send its next request on a connection the server is closing that instant,
# and that request fails with no answer ("Server disconnected without sending a response").
KEEP_ALIVE_SECONDS = 20

app = typer.Typer(help="IPX: register creative works with offline-verifiable evidence.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
users_app = typer.Typer(help="Accounts and roles.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
blobs_app = typer.Typer(help="Blob store housekeeping.", no_args_is_help=True)
log_app = typer.Typer(help="The transparency log.", no_args_is_help=True)
witness_app = typer.Typer(help="Witnessing other logs (C2SP tlog-witness).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(blobs_app, name="blobs")
app.add_typer(log_app, name="log")
app.add_typer(witness_app, name="witness")
app.add_typer(complaints_cli.app, name="complaints")
app.command("stats")(stats_cli.stats)


def _session_factory():  # type: ignore[no-untyped-def]
    from ipx.db import make_engine, make_session_factory

    return make_session_factory(make_engine(get_settings().resolved_database_url))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision."""
    from ipx.migrations import upgrade

    upgrade(get_settings().resolved_database_url)
    typer.echo("database is at the latest revision")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: int = 1,
    migrate: Annotated[bool, typer.Option(help="Run migrations first.")] = True,
) -> None:
    """Migrate, create the signing key on first start, and serve the API and pages."""
    import uvicorn

    from ipx.app import bootstrap, create_app

    settings = get_settings()
    if migrate:
        db_upgrade()
    first_start = create_app(settings).state
    bootstrap(first_start, settings)  # before starting workers: one key, one origin
    first_start.engine.dispose()
    typer.echo(f"IPX is serving on http://{host}:{port} (data: {settings.data_dir})")
    uvicorn.run("ipx.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, timeout_keep_alive=KEEP_ALIVE_SECONDS)


@users_app.command("create")
def users_create(
    email: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    role: Annotated[str, typer.Option(help="creator, staff or admin")] = "creator",
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create an account; staff and admin accounts can only be made here."""
    from ipx.accounts.models import Role
    from ipx.accounts.service import create_user
    from ipx.db import transaction
    from ipx.errors import IPXError

    try:
        with transaction(_session_factory()) as session:
            user = create_user(
                session, email=email, password=password, display_name=display_name or email.split("@")[0],
                role=Role(role),
            )
    except (IPXError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {role} account {user.email} ({user.id})")


@users_app.command("two-factor-off")
def users_two_factor_off(email: str) -> None:
    """Turn an account's two-step verification off, for a holder who lost the phone and the recovery codes and has
    proved who they are some other way; the account's address is told."""
    from ipx.accounts.two_factor import remove_for_support
    from ipx.db import transaction
    from ipx.errors import IPXError
    from ipx.notifications.service import deliver_pending, relay_for

    factory = _session_factory()
    try:
        with transaction(factory) as session:
            user = remove_for_support(session, email=email)
    except IPXError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    with transaction(factory) as session:
        deliver_pending(session, relay_for(get_settings()))
    typer.echo(f"two-step verification is off for {user.email}; they log in with the password alone")


@keys_app.command("init")
def keys_init() -> None:
    """Create the signing key if none is active."""
    from ipx.db import transaction
    from ipx.registry import keys

    with transaction(_session_factory()) as session:
        key = keys.ensure_active_key(session, get_settings().resolved_key_dir)
    typer.echo(f"active key {key.key_id}")


@witness_app.command("key")
def witness_key() -> None:
    """Print the witness's name and cosignature key (creating the key if needed): what a log operator configures."""
    from ipx.witness.keys import witness_verifier

    settings = get_settings()
    verifier = witness_verifier(settings.resolved_key_dir, settings.resolved_witness_name)
    typer.echo(f"witness name: {verifier.name}")
    typer.echo(f"cosignature key: {verifier.vkey}")
    typer.echo(f"submission prefix: {settings.public_url}/witness")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Retire the active key (it stays published, its private half is destroyed) and sign from now on with a new
    one."""
    from ipx.db import transaction
    from ipx.registry import keys
    from ipx.registry.service import rotate_key

    key_dir = get_settings().resolved_key_dir
    with transaction(_session_factory()) as session:
        key = rotate_key(session, key_dir)
    with transaction(_session_factory()) as session:
        destroyed = keys.destroy_retired_private_keys(session, key_dir)
    typer.echo(f"now signing with {key.key_id}; the current checkpoint is signed by it too; the retired key's "
               f"private half is destroyed ({', '.join(k[:16] for k in destroyed) or 'none was left on disk'})")


@log_app.command("timestamp")
def log_timestamp(
    limit: Annotated[int, typer.Option(help="At most this many entries per run.", min=1)] = 500,
) -> None:
    """Get the configured time-stamping authority's RFC 3161 token for each log entry without one (run from cron);
    bundles carry the tokens from then on.

    The authority is asked outside any transaction, and each token is stored in its own short one: on SQLite a
    transaction holds the whole database's write lock, which a slow authority would otherwise hold for minutes.
    """
    from sqlalchemy.exc import IntegrityError

    from ipx.db import transaction
    from ipx.registry.service import keep_timestamp, unstamped_entries
    from ipx.registry.timestamps import TimestampError, request_token

    authority = get_settings().timestamp_authority
    if authority is None:
        typer.echo("error: no time-stamping authority is configured (IPX_TSA_URL and IPX_TSA_ROOTS_FILE)", err=True)
        raise typer.Exit(2)
    sessions = _session_factory()
    with transaction(sessions) as session:
        pending = unstamped_entries(session, limit=limit)
    stamped, problem = 0, None
    for index, statement in pending:
        try:
            response, at = request_token(authority, statement)
        except TimestampError as exc:
            problem = str(exc)
            break
        try:
            with transaction(sessions) as session:
                stamped += keep_timestamp(session, index, authority.url, response, at)
        except IntegrityError:
            pass  # a run at the same time stored this entry's token first
    typer.echo(f"{stamped} log entr{'y' if stamped == 1 else 'ies'} timestamped by {authority.url}")
    if problem:
        typer.echo(f"error: stopped early, the rest wait for the next run: {problem}", err=True)
        raise typer.Exit(1)


@log_app.command("witness")
def log_witness() -> None:
    """Ask each configured witness to cosign the log's latest checkpoint (run from cron, every few minutes); bundles
    carry the cosignatures from then on, and verifiers that require a quorum of witnesses accept them."""
    import httpx

    from ipx.registry.witnesses import collect_cosignatures

    policy = get_settings().witness_policy
    if policy is None:
        typer.echo("error: no witnesses are configured (IPX_LOG_WITNESSES, and IPX_LOG_WITNESS_QUORUM)", err=True)
        raise typer.Exit(2)
    with httpx.Client(timeout=30) as client:
        outcomes = collect_cosignatures(_session_factory(), client, policy)
    for outcome in outcomes:
        if outcome.problem:  # it quotes the witness's answer: a hostile witness must not write on the terminal
            typer.echo(f"error: {_shown(outcome.problem)}", err=True)
        else:
            typer.echo(f"{outcome.witness} cosigned size {outcome.tree_size}"
                       + ("" if outcome.stored else " (already kept)"))
    cosigned = sum(outcome.problem is None for outcome in outcomes)
    if cosigned < policy.quorum:
        typer.echo(f"error: {cosigned} of the {policy.quorum} cosignatures required: new bundles cannot pass a "
                   "verifier that asks for the quorum until enough witnesses cosign", err=True)
    raise typer.Exit(0 if cosigned == len(outcomes) else 1)


@log_app.command("monitor")
def log_monitor(
    site: Annotated[str, typer.Argument(help="The IPX site, e.g. https://ipx.example.")],
    keys_file: Annotated[Path, typer.Option(
        "--keys", help="A saved copy of IPX's published keys, /.well-known/ipx/keys: the keys checkpoints must be "
        "signed with.")],
    state_file: Annotated[Path, typer.Option(
        "--state", help="Where the last accepted checkpoint is kept between runs (created on the first run).")],
    entries: Annotated[bool, typer.Option(
        "--entries", help="Also download the new entries, rebuild the tree from them, and list them.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check that IPX's log only ever grows: each checkpoint it signs must extend the last one this monitor saw (run
    from cron; several monitors in different places catch a log that shows different people different histories).

    Exit status: 0 consistent, 1 inconsistent (the evidence is printed and kept beside the state file, and the state
    is left as it was), 2 a keys or state file that cannot be used, 3 the site cannot be reached or answers nonsense.
    """
    from ipx.registry.evidence import what_it_proves
    from ipx.registry.monitor import (
        LogInconsistent,
        MonitorError,
        RemoteLog,
        SeenLog,
        UnusableLocalFile,
        checkpoint_verifiers,
        observe,
    )

    try:
        published = _read_json(keys_file, "IPX's published keys")
        verifiers = checkpoint_verifiers(published)
        seen = None
        if state_file.exists():
            seen = SeenLog.from_json(state_file.read_text("utf-8"), checkpoint_verifiers(published, retired_too=True))
        observation = observe(RemoteLog(site), seen, verifiers, audit=entries)
    except (UnusableLocalFile, OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except MonitorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    except LogInconsistent as exc:
        _report_inconsistency(exc, state_file.with_name(state_file.name + ".conflict"), as_json=as_json)
        raise typer.Exit(1) from exc
    try:
        if observation.status != "older":
            _write_atomically(state_file, observation.seen.to_json())
    except OSError as exc:
        typer.echo(f"error: the state cannot be saved in {state_file} ({exc.strerror or exc})", err=True)
        raise typer.Exit(2) from exc
    saved, served, previous = observation.seen, observation.served_size, observation.previous_size
    if as_json:
        typer.echo(json.dumps({
            "status": observation.status, "origin": saved.origin, "tree_size": served, "previous_size": previous,
            "saved_size": saved.size, "saved_root_hash": saved.root_hash.hex(),
            "entries": [{"index": index, "statement": statement} for index, statement in observation.entries],
        }, indent=2))
        return
    summary = {
        "first seen": f"FIRST SEEN: the log {_shown(saved.origin)} at {served} entries; later runs check it grows",
        "unchanged": f"UNCHANGED: still {served} entries",
        "grown": f"CONSISTENT: the log grew from {previous} to {served} entries and keeps every earlier one",
        "older": f"OLDER: the site served a checkpoint of {served} entries, proven part of the {previous} seen "
                 "before (a stale copy, e.g. from a cache); nothing saved",
    }[observation.status]
    typer.echo(summary + (f"; the entries rebuild its signed tree ({len(observation.entries)} new)" if entries else ""))
    for index, statement in observation.entries:
        proves = what_it_proves(dict(statement)) if statement else "not a statement IPX signs"
        typer.echo(f"  {index}: {_shown(proves)}")


def _report_inconsistency(found: LogInconsistent, conflict: Path, *, as_json: bool) -> None:
    """Print the evidence first, then keep it beside the state: a file that cannot be written must not lose it."""
    try:
        conflict.write_text(found.evidence(), "utf-8")
        kept = f"The evidence is saved in {conflict}"
    except OSError as exc:
        kept = f"The evidence could not be saved in {conflict} ({exc.strerror or exc}): keep this output"
    if as_json:
        typer.echo(json.dumps({"status": "inconsistent", "reason": found.reason, "checkpoints": found.checkpoints,
                               "details": found.details, "evidence": kept}, indent=2))
    else:
        typer.echo(f"INCONSISTENT: {_shown(found.evidence(), keep_lines=True)}\n{kept}; the state was not changed. "
                   "Publish the evidence: the checkpoints in it carry IPX's signature.")


def _shown(text: str, *, keep_lines: bool = False) -> str:
    """Text that came from the site, as harmless output: anyone can register a title holding line breaks, terminal
    escapes or bidirectional overrides, which would otherwise forge lines of the report or rewrite the screen."""
    return "".join(
        char if char.isprintable() or (keep_lines and char == "\n") else char.encode("unicode_escape").decode()
        for char in text
    )


def _write_atomically(path: Path, text: str) -> None:
    """A monitor killed mid-write must not leave half a state file (the next run could not check anything)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, "utf-8")
    partial.replace(path)


@keys_app.command("list")
def keys_list() -> None:
    """Every key ever used, with its validity window."""
    from ipx.db import transaction
    from ipx.registry import keys

    with transaction(_session_factory()) as session:
        for key in keys.all_keys(session):
            until = key.valid_until.isoformat() if key.valid_until else "active"
            typer.echo(f"{key.key_id}  {key.valid_from.isoformat()} .. {until}")


@blobs_app.command("sweep")
def blobs_sweep(
    grace_seconds: Annotated[int | None, typer.Option(min=0, max=100 * 365 * 86400, help="Default: setting.")] = None,
) -> None:
    """Remove stored files that no registration owns (left by a crash mid-upload)."""
    from ipx.blobs import open_blob_store
    from ipx.db import transaction
    from ipx.storage import sweep_orphan_blobs

    settings = get_settings()
    store = open_blob_store(
        settings.resolved_blob_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    grace = settings.orphan_blob_grace_seconds if grace_seconds is None else grace_seconds
    with transaction(_session_factory()) as session:
        removed = sweep_orphan_blobs(session, store, grace)
    typer.echo(f"removed {len(removed)} orphaned blob(s)")


def _registry_context(fingerprint_concurrency: int = 1):  # type: ignore[no-untyped-def]
    """The registry's collaborators as the server builds them, for commands that read works and their files.

    A command fingerprints as many files at once as it runs threads, so none of them ever waits for a turn.
    """
    from ipx.blobs import open_blob_store
    from ipx.fingerprint.engine import FingerprintEngine
    from ipx.registry.service import RegistryContext

    settings = get_settings()
    return RegistryContext(
        blobs=open_blob_store(settings.resolved_blob_url, endpoint_url=settings.s3_endpoint_url,
                              region=settings.s3_region),
        key_dir=settings.resolved_key_dir, public_url=settings.public_url.rstrip("/"),
        fingerprints=FingerprintEngine(
            max_image_pixels=settings.max_image_pixels, concurrency=fingerprint_concurrency
        ),
        timestamp_authority=settings.timestamp_authority,
        witness_policy=settings.witness_policy,
    )


@app.command()
def scan(
    folder: Annotated[
        Path, typer.Argument(help="Folder of files to check against the registry.", exists=True, file_okay=False)
    ],
    out: Annotated[Path, typer.Option(help="CSV report to write.")] = Path("ipx-scan.csv"),
    jobs: Annotated[int | None, typer.Option(min=1, help="Files checked at once (default: one per CPU core).")] = None,
) -> None:
    """Check every file in a folder against the registry (exact and perceptual) and write a CSV report."""
    import csv
    import itertools
    import os
    from functools import partial

    from ipx.db import transaction
    from ipx.registry.scan import files_in, in_order_on_threads, report_row, scan_file
    from ipx.registry.service import rfc3339

    try:  # before the registry is loaded, which takes minutes for a large catalogue
        # file names that are not UTF-8 are written with their odd bytes escaped rather than stopping the report
        report = out.open("w", newline="", encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        raise typer.BadParameter(f"the report cannot be written to {out}: {exc.strerror}.", param_hint="--out") from exc
    settings = get_settings()
    factory = _session_factory()
    threads = jobs or os.cpu_count() or 1
    ctx = _registry_context(fingerprint_concurrency=threads)
    files, unreadable = files_in(folder, leaving_out=out)
    typer.echo("Loading the registry's fingerprints...")
    with transaction(factory) as session:  # once, before the files' threads each find the index empty
        ctx.fingerprints.catch_up(session)
    check = partial(scan_file, factory=factory, ctx=ctx, max_bytes=settings.max_upload_bytes)
    matched = failed = 0
    with report, typer.progressbar(length=len(unreadable) + len(files), label="Scanning") as progress:
        writer = csv.writer(report)
        writer.writerow(["path", "sha256", "media_type", "status", "work_id", "title", "method", "distance",
                         "similarity", "registered_at", "certificate_url", "compared_by", "note"])
        for scanned in itertools.chain(unreadable, in_order_on_threads(check, files, threads)):
            progress.update(1)
            found = scanned.found
            if found is None:
                failed += 1
                writer.writerow(report_row([scanned.path, scanned.sha256, "", f"error: {scanned.problem}", *[""] * 9]))
                continue
            compared = [" ".join(found.detection.methods), found.detection.note or ""]
            matches = found.exact + found.similar
            matched += bool(matches)
            if not matches:
                writer.writerow(report_row([scanned.path, scanned.sha256, found.media_type, "no match", *[""] * 7,
                                            *compared]))
            for match in matches:
                writer.writerow(report_row([
                    scanned.path, scanned.sha256, found.media_type, "match", match.work.id, match.work.title,
                    match.method, match.distance, round(match.similarity, 4), rfc3339(match.work.registered_at),
                    f"{ctx.public_url}/works/{match.work.id}", *compared,
                ]))
    could_not = f"; {failed} could not be checked (see the report)" if failed else ""
    typer.echo(f"{matched} of {len(files)} files match registered works{could_not}; report: {out}")


@app.command()
def refingerprint() -> None:
    """Recompute every registered work's index fingerprints from its stored file; restart the server after."""
    from ipx.db import transaction
    from ipx.registry import service

    with transaction(_session_factory()) as session:
        report = service.refingerprint_works(session, _registry_context())
    for work_id, why in report.failed:
        typer.echo(f"not recomputed: {work_id}: {why}", err=True)
    typer.echo(
        f"{len(report.updated)} work(s) re-fingerprinted, {report.unchanged} unchanged, {len(report.failed)} failed; "
        "restart IPX so every worker rebuilds its index"
    )
    if report.failed:
        raise typer.Exit(1)


class StatementKind(StrEnum):
    registration = "registration"
    license = "license"
    revocation = "revocation"

    @property
    def statement_type(self) -> str:
        from ipx.registry.evidence import LICENSE_TYPE, REGISTRATION_TYPE, REVOCATION_TYPE

        return {"registration": REGISTRATION_TYPE, "license": LICENSE_TYPE, "revocation": REVOCATION_TYPE}[self.value]


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Evidence bundle (JSON) downloaded from IPX.")],
    file: Annotated[Path | None, typer.Argument(help="The work's file, to check its SHA-256.")] = None,
    keys_file: Annotated[Path | None, typer.Option(
        "--keys", help="A saved copy of IPX's published keys, /.well-known/ipx/keys: what IPX's signature is checked "
        "against.")] = None,
    expect: Annotated[StatementKind | None, typer.Option(
        help="Refuse any other kind of statement (a license bundle cannot pass for a registration).")] = None,
    witness: Annotated[list[str] | None, typer.Option(
        help="A witness you trust, by its cosignature verifier key (repeat for several): its cosignatures count "
        "instead of those of the witnesses the keys file names.")] = None,
    quorum: Annotated[int | None, typer.Option(
        help="How many of the witnesses must have cosigned the checkpoint (default: the keys file's quorum, or 1 "
        "with --witness).", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Verify an evidence bundle offline: IPX's signature with a key IPX published, log inclusion, checkpoint (and its
    witnesses' cosignatures, where the keys file or --witness names witnesses), and the file."""
    from ipx.registry.evidence import (
        PublishedKeysError,
        published_keys,
        published_timestamp_roots,
        published_witness_policy,
        verify_bundle,
        work_sha256,
    )

    if keys_file is None:
        typer.echo(
            "error: give IPX's published keys with --keys FILE (save them once from /.well-known/ipx/keys on the IPX "
            "site, e.g. https://ipx.example/.well-known/ipx/keys). A bundle carries its own key, so without IPX's "
            "list anyone could make one that passes.", err=True)
        raise typer.Exit(2)
    document = _read_json(bundle, "a JSON evidence bundle")
    published = _read_json(keys_file, "IPX's published keys")
    try:
        trusted, timestamp_roots = published_keys(published), published_timestamp_roots(published)
        witnesses = published_witness_policy(published)
    except PublishedKeysError as exc:
        typer.echo(f"error: cannot read {keys_file} as IPX's published keys ({exc})", err=True)
        raise typer.Exit(2) from exc
    try:
        witnesses = _chosen_witnesses(witness or [], quorum, witnesses)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report = verify_bundle(document, file.read_bytes() if file else None, trusted, timestamp_roots, witnesses)
    if expect is not None and report.statement_type not in (None, expect.statement_type):
        report.add("statement type", False, f"this is a {report.statement_type} statement, not the "
                                            f"{expect.statement_type} asked for")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for check in report.checks:
            typer.echo(f"  {'✔' if check.ok else '✘'} {check.name}: {check.detail}")
        if report.ok:
            log = document["log"]
            typer.echo(f"VERIFIED: {report.proves}, entry {log['index']} of log {log['origin']}.")
            if report.witnessed:
                typer.echo(f"WITNESSED: the checkpoint is {report.witnessed}.")
            if report.timestamped:
                typer.echo(f"TIMESTAMPED: {report.timestamped}.")
            elif "timestamp" in document:
                typer.echo("  (the bundle's RFC 3161 timestamp was not checked: the keys file names no time-stamping "
                           "authority)")
            if report.revoked:
                typer.echo(f"REVOKED: {report.revoked}. It no longer covers any use.")
            elif report.statement_type == StatementKind.license.statement_type:
                typer.echo("  (a license can be revoked later: a bundle downloaded after a revocation carries it, and "
                           "/api/v1/licenses/{id} on the IPX site says the license's status now)")
            if file is None and work_sha256(document["statement"]) is not None:
                typer.echo("  (no file given: pass the file too to check that it is this exact work)")
        else:
            typer.echo("NOT VERIFIED: " + "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok))
    sys.exit(0 if report.ok else 1)


def _chosen_witnesses(vkeys: list[str], quorum: int | None, published: WitnessPolicy | None) -> WitnessPolicy | None:
    """The verifier's own witnesses when given, else those the keys file names; the quorum as asked, else theirs."""
    from ipx.registry.note import CosignatureVerifier, NoteError
    from ipx.registry.witnesses import Witness, WitnessPolicy

    if vkeys:
        try:
            chosen = tuple(Witness(CosignatureVerifier.from_vkey(vkey), "") for vkey in vkeys)
        except NoteError as exc:
            raise ValueError(f"--witness: {exc}") from exc
        return WitnessPolicy(chosen, quorum or 1)
    if published is None:
        if quorum is not None:
            raise ValueError("--quorum needs witnesses: the keys file names none, give them with --witness")
        return None
    return WitnessPolicy(published.witnesses, quorum or published.quorum)


def _duplicate_members_refused(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON with a member twice reads differently in different parsers (Python keeps the last, others the first):
    evidence must mean one thing to every reader."""
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise ValueError(f"the member {name!r} appears twice in one object")
        members[name] = value
    return members


def _read_json(path: Path, what: str) -> Any:
    """A JSON file as UTF-8 whatever the machine's locale (bundles hold an em dash), duplicate members refused."""
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"), object_pairs_hook=_duplicate_members_refused)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        typer.echo(f"error: cannot read {path} as {what} ({exc})", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    """The `ipx` command. What a command does not handle itself still ends in one line in words and exit code 1,
    never a traceback: a database that is not there or not migrated, a file that cannot be read, IPX's own refusals."""
    from sqlalchemy.exc import SQLAlchemyError

    from ipx.errors import IPXError

    try:
        app()
    except IPXError as exc:
        _fail(exc.detail)
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip().splitlines()[0]
        _fail(f"the database cannot be used ({reason}); check IPX_DATABASE_URL, and run `ipx db upgrade` first")
    except OSError as exc:
        _fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")
    except RecursionError:
        _fail("the input is nested too deeply to be read")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
