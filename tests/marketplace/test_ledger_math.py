"""Ledger arithmetic: largest-remainder splits never lose or invent a minor unit; journals balance."""

from __future__ import annotations

import random

import pytest

from ipx.marketplace import ledger


@pytest.mark.parametrize(("total", "weights", "parts"), [
    (100, [3333, 3333, 3334], [33, 33, 34]),
    (1, [5000, 5000], [1, 0]),
    (901, [3333, 3333, 3334], [300, 300, 301]),
    (0, [1, 2], [0, 0]),
    (-901, [3333, 3333, 3334], [-300, -300, -301]),
    (10, [10000], [10]),
])
def test_split_examples(total, weights, parts):
    assert ledger.split_largest_remainder(total, weights) == parts


def test_split_always_sums_exactly():
    rng = random.Random(7)
    for _ in range(2000):
        weights = [rng.randint(0, 10_000) for _ in range(rng.randint(1, 7))]
        weights[0] += 1
        total = rng.randint(0, 10**9)
        parts = ledger.split_largest_remainder(total, weights)
        assert sum(parts) == total
        exact = [total * w / sum(weights) for w in weights]
        assert all(abs(part - share) < 1 for part, share in zip(parts, exact, strict=True))


def test_split_refuses_meaningless_weights():
    with pytest.raises(ValueError):
        ledger.split_largest_remainder(10, [0, 0])


def test_sale_postings_balance_and_split_per_co_creator():
    creators = [ledger.CreatorShare("Ada", 3333), ledger.CreatorShare("Ben", 3333), ledger.CreatorShare("Cy", 3334)]
    postings = ledger.sale_postings(amount=1001, currency="EUR", fee_bps=1000, provider="stripe",
                                    owner_account_id="acct-1", creators=creators)
    ledger.assert_balanced(postings)
    assert postings[0] == ledger.Posting("provider:stripe", "EUR", -1001)
    assert postings[1] == ledger.Posting("platform:fees", "EUR", 100)
    assert [(p.account, p.beneficiary, p.amount) for p in postings[2:]] == [
        ("creator:acct-1", "Ada", 300), ("creator:acct-1", "Ben", 300), ("creator:acct-1", "Cy", 301),
    ]


def test_unbalanced_journal_is_refused():
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.assert_balanced([ledger.Posting("a", "EUR", 5), ledger.Posting("b", "EUR", -4)])
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.assert_balanced([ledger.Posting("a", "EUR", 5), ledger.Posting("b", "USD", -5)])
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.assert_balanced([])


def test_partial_refunds_add_up_to_the_exact_mirror_of_the_sale():
    """However a sale's refunds are cut, each part balances and together they are the sale reversed to the unit."""
    rng = random.Random(11)
    creators = [ledger.CreatorShare("Ada", 3333), ledger.CreatorShare("Ben", 3333), ledger.CreatorShare("Cy", 3334)]
    for _ in range(500):
        amount = rng.randint(1, 100_000)
        sale = ledger.sale_postings(amount=amount, currency="EUR", fee_bps=rng.choice([0, 1000, 1250]),
                                    provider="stripe", owner_account_id="acct-1", creators=creators)
        cuts = [*sorted(rng.sample(range(amount + 1), min(amount + 1, rng.randint(1, 4)))), amount]
        totals = [0] * len(sale)
        already = 0
        for refunded in cuts:
            before, after = ledger.mirrored_part(sale, already), ledger.mirrored_part(sale, refunded)
            part = [new - old for old, new in zip(before, after, strict=True)]
            assert sum(part) == 0  # each refund journal balances
            assert part[0] == refunded - already  # the provider pays back exactly what went back
            totals = [t + p for t, p in zip(totals, part, strict=True)]
            already = refunded
        assert totals == [-p.amount for p in sale]


def test_a_partial_refund_takes_the_fee_and_each_creator_part_in_proportion():
    sale = ledger.sale_postings(amount=3000, currency="GBP", fee_bps=1000, provider="stripe",
                                owner_account_id="acct-1", creators=[])
    assert ledger.mirrored_part(sale, 400) == [400, -40, -360]
    assert ledger.mirrored_part(sale, 3000) == [3000, -300, -2700]
