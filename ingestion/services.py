"""Event intake: validate, dedupe, price, write to the ledger, then tell the live ledger."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings

from aforo.catalog import catalog_register
from aforo.errors import unavailable_part
from aforo.eventstore import InsertOutcomeUnknown
from aforo.ledger import EVENT_DIMENSIONS, LEDGER_DEFAULTS, ledger_entry
from aforo.models import Tenant
from aforo.money import LEDGER_MAX, fits_ledger
from aforo.shared_cache import redis_version_reads, versions_prefetched
from ingestion import broadcast, dedupe
from ingestion.commit import committer
from ingestion.costing import BatchPricer, CostSplit, Usage, carried_split, priced_split
from ingestion.hooks import post_ingest_run, pre_insert_run
from ingestion.rate_cards import RateCard, rate_card_for
from ingestion.schema import Event, EventRejected, camel, event_decode, raw_event_id

log = logging.getLogger(__name__)
ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
COST_COLUMNS = ("ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd")
# The Decimal columns of a ledger entry (the caps check's fast path; the slow one reads them
# all), taken from the defaults so a money column added there is checked too.
MONEY_COLUMNS = tuple(c for c, v in LEDGER_DEFAULTS.items() if isinstance(v, Decimal))


@dataclass
class EventResult:
    event_id: str | None
    status: str
    field: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"eventId": self.event_id, "status": self.status}
        if self.status == REJECTED:
            body.update(field=self.field, reason=self.reason)
        return body


@dataclass
class IngestReport:
    results: list[EventResult] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def retention() -> timedelta:
    return timedelta(days=settings.AFORO_RETENTION_DAYS)


def _event_cost(pricer: BatchPricer, event: Event) -> CostSplit:
    """What an event costs: what it carried, else priced at the rate card (the batch's
    lookups shared through `pricer`)."""
    if (event.cogs_usd is not None or event.ai_cogs_usd is not None
            or event.infra_cogs_usd is not None or event.fee_cogs_usd is not None):
        return carried_split(event.cogs_usd, event.ai_cogs_usd, event.infra_cogs_usd,
                             event.fee_cogs_usd)
    return pricer.split(
        provider=event.provider or "", model=event.model or "", product_id=event.product_id or "",
        source_type=event.source_type or "", occurred_at=event.occurred_at,
        input_tokens=event.input_tokens, output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens, reasoning_tokens=event.reasoning_tokens,
        cache_write_input_tokens=event.cache_write_input_tokens)


# A COST entry's columns in ledger order with their defaults: the hot loop copies this and sets
# what the event carries (what ledger_entry does, without its per-row checks).
_COST_TEMPLATE = ledger_entry(**dict.fromkeys(("tenant_id", "entry_id", "event_id"), ""),
                              entry_type="COST",
                              occurred_at=datetime(2000, 1, 1, tzinfo=timezone.utc),
                              recorded_at=datetime(2000, 1, 1, tzinfo=timezone.utc),
                              event_count=1)
ONE = Decimal(1)


def _cost_row(tenant_id: str, event: Event, cost: CostSplit, now: datetime) -> dict[str, Any]:
    """The original COST entry of an event, built from a template (what `ledger_entry` makes,
    without its per-row checks; tests/ingestion/test_hot_path.py holds the two equal)."""
    row = _COST_TEMPLATE.copy()
    event_id = event.event_id
    row["tenant_id"] = tenant_id
    row["entry_id"] = row["event_id"] = event_id
    row["occurred_at"] = event.occurred_at
    row["recorded_at"] = now
    row["customer_id"] = event.customer_id or ""
    row["product_id"] = event.product_id or ""
    row["product_type"] = event.product_type or ""
    row["provider"] = event.provider or ""
    row["model"] = event.model or ""
    row["requested_model"] = event.requested_model or ""
    row["tool_name"] = event.tool_name or ""
    row["source_type"] = event.source_type or ""
    row["session_id"] = event.session_id or ""
    row["agent"] = event.agent or ""
    row["latency_ms"] = event.latency_ms or 0
    row["input_tokens"] = event.input_tokens
    row["output_tokens"] = event.output_tokens
    row["cached_input_tokens"] = event.cached_input_tokens
    row["cache_write_input_tokens"] = event.cache_write_input_tokens
    row["reasoning_tokens"] = event.reasoning_tokens
    row["reasoning_steps"] = event.reasoning_steps
    row["tool_calls"] = event.tool_calls
    row["quantity"] = event.quantity if event.quantity is not None else ONE
    row["ai_cogs_usd"] = cost.ai
    row["infra_cogs_usd"] = cost.infra
    row["fee_cogs_usd"] = cost.fee
    row["unclassified_cogs_usd"] = cost.unclassified
    row["cost_source"] = "CARRIED" if cost.carried else "RATE_CARD"
    row["unpriced"] = 0 if cost.priced else 1
    if event.revenue_usd is not None:
        row["carried_revenue_usd"] = event.revenue_usd
        row["revenue_source"] = "CARRIED"
    return row


def _rate(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    """Each event's provisional revenue: what it carried, else what its customer's plan will
    charge for it (rated), else none (estimated or unknown at read time)."""
    from billing.rating import plan_rating

    unrated = [row for row in rows if row["revenue_source"] != "CARRIED"]
    for row, revenue in zip(unrated, plan_rating(tenant=tenant, entries=unrated), strict=True):
        if revenue is not None:
            row["rated_revenue_usd"] = revenue
            row["revenue_source"] = "RATED"


def events_ingest(*, tenant: Tenant, raws: list[msgspec.Raw],
                  now: datetime | None = None) -> IngestReport:
    """Ingest events exactly once; each gets accepted, duplicate or rejected (with the field).

    Accepted means written to the event store. If the write fails, the error propagates
    (EventStoreUnavailable: the API answers 503) and nothing of this call is counted, so a
    retry lands exactly once; on a cluster that holds too when the write's outcome is unknown
    (InsertOutcomeUnknown): its claims are kept, and a retry settles them (ingestion.dedupe).
    """
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    keep = retention()
    report = IngestReport()
    decoded: dict[str, Event] = {}
    slots: dict[str, EventResult] = {}
    for raw in raws:
        try:
            event = event_decode(raw, now=now, retention=keep)
        except EventRejected as exc:
            report.results.append(EventResult(raw_event_id(raw), REJECTED, exc.field, exc.reason))
            continue
        result = EventResult(event.event_id, ACCEPTED)
        if event.event_id in decoded:
            result.status = DUPLICATE  # the same id twice in one batch counts once
        else:
            decoded[event.event_id] = event
            slots[event.event_id] = result
        report.results.append(result)
    if not decoded:
        return report

    claims = dedupe.claims()
    token = dedupe.new_claim_token()
    remaining = list(decoded)
    # The rate card's and plans' versions ride on the first claim's round trip (Redis mode),
    # so a batch costs two Redis round trips: the claim, and its confirmation after the insert.
    version_reads = redis_version_reads(tenant, claims.url) if claims.url else None
    card = None
    unsettled: list[str] = []  # of earlier writes whose outcome is not known yet
    for _round in range(3):
        reads = version_reads[0] if version_reads and card is None else []
        claimed = claims.try_claim(tenant.slug, remaining, token, reads)
        if claimed.unknown or claimed.unsettled:
            _settle_unknown(tenant, claimed, slots, claims, token, unsettled)
        if card is None:
            with versions_prefetched(version_reads[1](claimed.read) if reads else None):
                try:
                    card = rate_card_for(tenant)  # rebuilt from the database if it changed
                except BaseException:
                    claims.finish(tenant.slug, claimed.claimed, token, ok=False)
                    raise
                report.rows.extend(_write_claimed(tenant, card, decoded, slots,
                                                  claimed.claimed, claims, token, now))
        else:
            report.rows.extend(_write_claimed(tenant, card, decoded, slots, claimed.claimed,
                                              claims, token, now))
        for event_id in claimed.duplicates:
            slots[event_id].status = DUPLICATE
        if not claimed.pending:
            break
        # In flight in another request: once it has finished, each id is either done
        # (a duplicate, found by the next try) or released after a failure (ours to write).
        claims.wait(tenant.slug, claimed.pending)
        remaining = claimed.pending
    else:
        # Still claimed elsewhere after three rounds. Those the ledger holds are duplicates;
        # the others may never land (their holder died, or lost Redis before it could release
        # them), so they are not acknowledged: the batch answers 503 and its retry settles them.
        in_ledger = dedupe.already_in_ledger(tenant.slug, remaining)
        for event_id in in_ledger:
            slots[event_id].status = DUPLICATE
        if len(in_ledger) < len(remaining):
            _after_commit(tenant, report.rows)
            raise dedupe.ClaimsHeldElsewhere(len(remaining) - len(in_ledger))
    _after_commit(tenant, report.rows)
    if unsettled:
        raise dedupe.OutcomeUnknown(len(unsettled))
    return report


def _settle_unknown(tenant: Tenant, claimed: dedupe.ClaimResult, slots: dict[str, EventResult],
                    claims, token: bytes, unsettled: list[str]) -> None:
    """Ids of an earlier write whose outcome was unknown: those this request took over are
    duplicates if the ledger holds them, else ours to write; the others wait (503 in_flight)."""
    unsettled.extend(claimed.unsettled)
    if claimed.unknown:
        done, absent, undecided = dedupe.unknown_resolve(claims, tenant.slug, claimed.unknown,
                                                         token, claimed.stops)
        for event_id in done:
            slots[event_id].status = DUPLICATE
        claimed.claimed.extend(absent)
        unsettled.extend(undecided)


def _after_commit(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    if rows:
        broadcast.ledger_broadcast(tenant=tenant, rows=rows)
        post_ingest_run(tenant, rows)


def _write_claimed(tenant: Tenant, card: RateCard, decoded: dict[str, Event],
                   slots: dict[str, EventResult], claimed: list[str], claims, token: bytes,
                   now: datetime) -> list[dict[str, Any]]:
    """Write the events this request holds claims for; finish the claims either way."""
    if not claimed:
        return []
    ok = False
    rows: list[dict[str, Any]] = []
    try:
        in_ledger = dedupe.already_in_ledger(tenant.slug, claimed)
        for event_id in in_ledger:
            slots[event_id].status = DUPLICATE
        pricer = BatchPricer(card)
        rows = [_cost_row(tenant.slug, decoded[e], _event_cost(pricer, decoded[e]), now)
                for e in claimed if e not in in_ledger]
        if rows:
            _rate(tenant, rows)
            rows = _within_caps(tenant, rows, slots, claims, token)
        if rows:
            catalog_register(
                tenant=tenant,
                customer_ids={r["customer_id"] for r in rows},
                products={r["product_id"]: r["product_type"] for r in rows},
            )
            pre_insert_run(tenant, rows)  # credit debits ride in the events' own insert
            committer.insert(rows)
        ok = True
    except InsertOutcomeUnknown as exc:
        # Some rows may be in a shard's ledger: their claims stay until a retry settles them.
        ok = True  # settled here, not released below
        log.warning("a write of %d events has an unknown outcome (stopped at: %s): %s",
                    len(rows), exc.stop, exc)
        dedupe.unknown_keep(claims, tenant.slug, claimed, [row["event_id"] for row in rows],
                            token, exc.stop)
        raise
    finally:
        if not ok:
            # A failed write releases its claims so a retry can land (if Redis is down too,
            # they expire after CLAIM_TTL_MS).
            claims.finish(tenant.slug, claimed, token, ok=False)
    # Written ids are done (in_ledger ones already were). The rows are in the ledger, which
    # is the lasting truth, so a failure to say so in Redis does not fail the request: the
    # claims expire, and a retry finds the events in the ledger.
    try:
        claims.finish(tenant.slug, claimed, token, ok=True)
    except Exception as exc:
        if unavailable_part(exc) is None:
            raise
        log.warning("claims of %d written events not confirmed: %s", len(claimed), exc)
    return rows


def _within_caps(tenant: Tenant, rows: list[dict[str, Any]], slots: dict[str, EventResult],
                 claims, token: bytes) -> list[dict[str, Any]]:
    """The rows whose every amount fits the ledger; the others are rejected one by one (400
    naming the field), their claims released. A cost past Decimal(18, 9) would fail the shared
    insert, and with it every other request and tenant in that group commit."""
    kept, over = [], []
    for row in rows:
        total = row["ai_cogs_usd"] + row["infra_cogs_usd"] + row["fee_cogs_usd"] \
            + row["unclassified_cogs_usd"]
        if -LEDGER_MAX <= total <= LEDGER_MAX and all(
                -LEDGER_MAX <= row[c] <= LEDGER_MAX for c in MONEY_COLUMNS):
            kept.append(row)  # the common case: every amount fits (values are finite)
            continue
        bad = next(((c, v) for c, v in row.items()
                    if isinstance(v, Decimal) and not fits_ledger(v)), None)
        if bad is None and not fits_ledger(total):
            bad = ("cogs_usd", total)
        if bad is None:
            kept.append(row)
            continue
        field = camel(bad[0])
        slots[row["event_id"]].status = REJECTED
        slots[row["event_id"]].field = field
        slots[row["event_id"]].reason = (
            f"{field} of this event would be {bad[1]:f}, over the per-event cap of "
            f"{LEDGER_MAX:f}; check its token counts, quantity and prices.")
        over.append(row["event_id"])
    claims.finish(tenant.slug, over, token, ok=False)
    return kept


def events_ingest_dicts(*, tenant: Tenant, events: list[dict[str, Any]],
                        now: datetime | None = None) -> IngestReport:
    """The same, for events as Python dicts in the API's shape (tests, the demo seed)."""
    encoder = msgspec.json.Encoder(decimal_format="number")
    return events_ingest(tenant=tenant, raws=[msgspec.Raw(encoder.encode(e)) for e in events],
                         now=now)


@dataclass
class RepriceReport:
    events_examined: int = 0
    events_corrected: int = 0
    ai_delta_usd: Decimal = Decimal(0)
    infra_delta_usd: Decimal = Decimal(0)
    fee_delta_usd: Decimal = Decimal(0)
    now_priced: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"eventsExamined": self.events_examined, "eventsCorrected": self.events_corrected,
                "aiDeltaUsd": self.ai_delta_usd, "infraDeltaUsd": self.infra_delta_usd,
                "feeDeltaUsd": self.fee_delta_usd, "nowPriced": self.now_priced}


def events_reprice(*, tenant: Tenant, start: datetime, end: datetime,
                   provider: str | None = None, model: str | None = None,
                   now: datetime | None = None) -> RepriceReport:
    """Re-cost rate-card-priced events of [start, end) with today's rate card.

    Each event whose cost changes gets a CORRECTION entry holding the difference (never an
    update), so a second run finds nothing to correct. Events that carried their own cost are
    never repriced.
    """
    from ingestion.queries import priced_events_current

    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    card = rate_card_for(tenant)
    report = RepriceReport()
    corrections = []
    for current in priced_events_current(tenant.slug, start=start, end=end, provider=provider,
                                         model=model):
        report.events_examined += 1
        cost = priced_split(card, Usage(
            provider=current["provider"], model=current["model"],
            product_id=current["product_id"], source_type=current["source_type"],
            occurred_at=current["occurred_at"], input_tokens=current["input_tokens"],
            output_tokens=current["output_tokens"],
            cached_input_tokens=current["cached_input_tokens"],
            cache_write_input_tokens=current["cache_write_input_tokens"],
            reasoning_tokens=current["reasoning_tokens"]))
        deltas = (cost.ai - current["ai_cogs_usd"], cost.infra - current["infra_cogs_usd"],
                  cost.fee - current["fee_cogs_usd"])
        unpriced_delta = (0 if cost.priced else 1) - current["unpriced"]
        if not any(deltas) and not unpriced_delta:
            continue
        report.events_corrected += 1
        report.ai_delta_usd += deltas[0]
        report.infra_delta_usd += deltas[1]
        report.fee_delta_usd += deltas[2]
        report.now_priced += max(0, -unpriced_delta)
        dims = {k: current[k] for k in (*EVENT_DIMENSIONS, "revenue_source")}
        corrections.append(ledger_entry(
            tenant_id=tenant.slug, entry_id=f"{current['event_id']}#reprice#{now:%Y%m%dT%H%M%S}",
            entry_type="COST", entry_kind="CORRECTION", event_id=current["event_id"],
            occurred_at=current["occurred_at"], recorded_at=now, **dims,
            ai_cogs_usd=deltas[0], infra_cogs_usd=deltas[1], fee_cogs_usd=deltas[2],
            cost_source="RATE_CARD", unpriced=unpriced_delta,
            # rated revenue (a plan's markup on COGS) follows the new cost
            rated_revenue_usd=Decimal(0), quantity=Decimal(0),
        ))
        corrections[-1]["_full"] = {**current, "ai_cogs_usd": cost.ai,
                                    "infra_cogs_usd": cost.infra, "fee_cogs_usd": cost.fee}
    if corrections:
        from billing.settlement import settlements_reconcile_events

        _rerate(tenant, corrections)
        for start_at in range(0, len(corrections), 10_000):
            committer.insert(corrections[start_at:start_at + 10_000])
        # A settled event's new cost must not count as settling: its SETTLE entry follows.
        settlements_reconcile_events(
            tenant_slug=tenant.slug, run_id=f"reprice-{now:%Y%m%dT%H%M%S}", now=now,
            events=[(c["event_id"], c["occurred_at"]) for c in corrections])
    return report


def _rerate(tenant: Tenant, corrections: list[dict[str, Any]]) -> None:
    """Set each correction's rated revenue to the change the new cost makes to it."""
    fulls = [c.pop("_full") for c in corrections]
    from billing.rating import rated_revenue

    for correction, full, revenue in zip(corrections, fulls,
                                         rated_revenue(tenant=tenant, entries=fulls),
                                         strict=True):
        # only a RATED event's provisional revenue follows its plan (a carried one is fixed)
        if full["revenue_source"] == "RATED":
            correction["rated_revenue_usd"] = revenue - full["rated_revenue_usd"]
