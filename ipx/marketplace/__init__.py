"""Marketplace: license offers for registered works, orders and payments, the ledger, license certificates.

Modules: `terms` (pure: offer validation, summary, ODRL export), `ledger` (double entry, integer minor
units), `payments` (`PaymentProvider`: offline, Stripe), `service` (everything pages and other domains
call), `api` (thin routes), `models`, `schemas`.

Model in brief:
- A listing holds offers for one registered work of its owner. Offers are terms as data
  (`terms.LicenseTerms`) with a price; "sold" (exclusive, once bought) or "withdrawn". A seller's withdrawal is
  final; refunding an exclusive sale puts its offer back on sale with the offers that sale withdrew.
- An order goes pending -> paid -> fulfilled, or ends failed / cancelled / refunded; every transition
  writes an audit event (`order.<status>`). Fulfilment issues a license: an `ipx.license/v1`
  statement signed and appended to the registry's transparency log; a refund appends an
  `ipx.license-revocation/v1` statement and never rewrites the log.
- Ledger accounts: `provider:<name>` (clearing), `platform:fees`, `creator:<owner account id>`.
  Positive amounts are value received, negative value given; every journal sums to zero per currency.
  The creator part of a sale is one entry per co-creator named in the registration (all on the owner's
  account, `beneficiary` = co-creator name), split by largest remainders.
- Concurrency and exactly-once: see `service` (offer row locks) and `service.handle_payment_event`
  (provider event ids are unique).
"""
