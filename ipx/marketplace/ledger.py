"""Double-entry ledger in integer minor units.

Accounts are strings: `provider:<name>` (money that came in through a payment provider, the clearing
account), `platform:fees` (the platform's cut) and `creator:<account_id>` (what a seller earned).
An entry's amount is signed: positive means the account received value, negative that it gave it,
so a sale of 1000 with a 10 % fee is provider -1000, platform +100, creator +900, and every
transaction sums to zero per currency. A sale's creator part is written as one entry per co-creator
named in the registration (same owner account, `beneficiary` = the co-creator's name), so the
split is queryable while only the owner, who has an account, is paid. Refunds post the exact mirror
of the sale; a partial refund posts its share of that mirror, and the refunds of one sale add up to the mirror
exactly. Splits use largest remainders, so rounding never loses or invents a minor unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ipx.marketplace.models import LedgerEntry, LedgerTransaction

PLATFORM_FEES = "platform:fees"
BPS = 10_000


class UnbalancedTransaction(AssertionError):
    """Raised before anything is written: a journal that does not sum to zero is a bug, never data."""


@dataclass(frozen=True)
class Posting:
    account: str
    currency: str
    amount: int
    beneficiary: str | None = None
    share_bps: int | None = None


@dataclass(frozen=True)
class CreatorShare:
    name: str
    share_bps: int


def creator_account(account_id: str) -> str:
    return f"creator:{account_id}"


def provider_account(provider: str) -> str:
    return f"provider:{provider}"


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`; the parts sum to `total` exactly.

    Each part gets the floor of its exact share; the minor units left over go one each to the
    largest fractional remainders (ties to the earlier weight, so the result is deterministic).
    """
    if total < 0:
        return [-part for part in split_largest_remainder(-total, weights)]
    weight_sum = sum(weights)
    if weight_sum <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative and not all zero")
    floors = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    leftover = total - sum(floors)
    for position in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:leftover]:
        floors[position] += 1
    return floors


def platform_fee(amount: int, fee_bps: int) -> int:
    """The platform's cut, rounded down: a creator is never charged a fraction of a unit more than agreed."""
    return amount * fee_bps // BPS


def sale_postings(
    *, amount: int, currency: str, fee_bps: int, provider: str, owner_account_id: str,
    creators: Sequence[CreatorShare],
) -> list[Posting]:
    """The journal of one sale: provider clearing pays the platform fee and every co-creator's part."""
    fee = platform_fee(amount, fee_bps)
    shares = list(creators) or [CreatorShare("", BPS)]
    parts = split_largest_remainder(amount - fee, [c.share_bps for c in shares])
    postings = [Posting(provider_account(provider), currency, -amount)]
    if fee:
        postings.append(Posting(PLATFORM_FEES, currency, fee))
    postings += [
        Posting(creator_account(owner_account_id), currency, part, share.name or None, share.share_bps)
        for share, part in zip(shares, parts, strict=True)
        if part
    ]
    return postings


def assert_balanced(postings: Sequence[Posting]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.currency] += posting.amount
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced or not postings:
        raise UnbalancedTransaction(f"ledger transaction does not sum to zero: {unbalanced or 'no entries'}")


def post(
    session: Session, *, kind: str, postings: Sequence[Posting], order_id: str | None, memo: str,
    reverses_id: int | None = None,
) -> LedgerTransaction:
    """Write one journal; refuses (raises) anything unbalanced before touching the session."""
    assert_balanced(postings)
    transaction = LedgerTransaction(kind=kind, order_id=order_id, memo=memo, reverses_id=reverses_id)
    session.add(transaction)
    session.flush()
    session.add_all(
        LedgerEntry(
            transaction_id=transaction.id, account=p.account, currency=p.currency, amount=p.amount,
            beneficiary=p.beneficiary, share_bps=p.share_bps,
        )
        for p in postings
    )
    session.flush()
    return transaction


def postings_of(session: Session, transaction_id: int) -> list[Posting]:
    rows = session.scalars(
        select(LedgerEntry).where(LedgerEntry.transaction_id == transaction_id).order_by(LedgerEntry.id)
    )
    return [Posting(r.account, r.currency, r.amount, r.beneficiary, r.share_bps) for r in rows]


def mirrored_part(postings: Sequence[Posting], refunded: int) -> list[int]:
    """Each posting's mirror once `refunded` of the journal's gross has gone back: both sides split in proportion to
    their amounts by largest remainders, so each side sums to exactly `refunded`, and the whole gross gives the exact
    mirror."""
    amounts = [p.amount for p in postings]
    mirror = [0] * len(postings)
    for sign in (1, -1):
        side = [i for i, amount in enumerate(amounts) if amount * sign > 0]
        for i, part in zip(side, split_largest_remainder(refunded, [abs(amounts[i]) for i in side]), strict=True):
            mirror[i] = -sign * part
    return mirror


def reverse(
    session: Session, original: LedgerTransaction, *, memo: str, refunded: int | None = None, already: int = 0
) -> LedgerTransaction | None:
    """Post the mirror of a journal for the gross refunded beyond `already` up to `refunded` (all of it by default):
    history is appended to, never edited. Partial refunds and the rest add up to the exact mirror, however they
    were cut. None when nothing more was refunded."""
    postings = postings_of(session, original.id)
    gross = sum(p.amount for p in postings if p.amount > 0)
    refunded = gross if refunded is None else refunded
    if not 0 <= already <= refunded <= gross:
        raise ValueError(f"cannot refund {already}..{refunded} of a journal of {gross}")
    before, after = mirrored_part(postings, already), mirrored_part(postings, refunded)
    part = [
        Posting(p.account, p.currency, new - old, p.beneficiary, p.share_bps)
        for p, old, new in zip(postings, before, after, strict=True) if new != old
    ]
    if not part:
        return None
    return post(session, kind="refund", postings=part, order_id=original.order_id, memo=memo, reverses_id=original.id)


def sale_of_order(session: Session, order_id: str) -> LedgerTransaction | None:
    return session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.order_id == order_id, LedgerTransaction.kind == "sale")
    ).first()


def summary(session: Session) -> dict[str, object]:
    """Transactions, how many do not balance (must be 0) and every account's balance per currency."""
    transactions = session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0
    per_transaction = (
        select(LedgerEntry.transaction_id)
        .group_by(LedgerEntry.transaction_id, LedgerEntry.currency)
        .having(func.sum(LedgerEntry.amount) != 0)
    )
    unbalanced = session.scalar(
        select(func.count(func.distinct(per_transaction.subquery().c.transaction_id)))
    ) or 0
    balances = session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.account, LedgerEntry.currency)
        .order_by(LedgerEntry.account, LedgerEntry.currency)
    )
    return {
        "transactions": transactions,
        "unbalanced": unbalanced,
        "accounts": [
            {"account": account, "currency": currency, "balance": int(balance)}
            for account, currency, balance in balances
        ],
    }
