"""CloudEvents intake, as OpenMeter takes it: id→eventId, subject→customerId, time→occurredAt,
and `data`'s fields as the rest of the event, so producers can switch over unchanged."""
from __future__ import annotations

import msgspec

from ingestion.schema import MAX_BATCH, BodyError

_one = msgspec.json.Decoder(dict[str, msgspec.Raw])
_data = msgspec.json.Decoder(dict[str, msgspec.Raw] | None)
_many = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()


def cloudevent_to_event(raw: msgspec.Raw) -> msgspec.Raw:
    """One CloudEvent's JSON as our event's JSON (values pass through untouched for validation)."""
    try:
        envelope = _one.decode(raw)
        fields: dict[str, msgspec.Raw] = dict(_data.decode(envelope.get("data", b"null")) or {})
    except (msgspec.DecodeError, msgspec.ValidationError):
        return raw  # let event validation name what is wrong
    for source, target in (("id", "eventId"), ("subject", "customerId"), ("time", "occurredAt")):
        if source in envelope:
            fields[target] = envelope[source]
    return msgspec.Raw(_encoder.encode(fields))


def cloudevents_split(body: bytes, *, batch: bool) -> list[msgspec.Raw]:
    if batch:
        try:
            raws = _many.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise BodyError(415, "unsupported_media_type",
                            "A CloudEvents batch must be a JSON array.") from None
    else:
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise BodyError(415, "unsupported_media_type", "The body is not JSON.") from None
        raws = [msgspec.Raw(body)]
    if not raws:
        raise BodyError(400, "invalid", "The batch is empty.", "events")
    if len(raws) > MAX_BATCH:
        raise BodyError(400, "invalid", f"At most {MAX_BATCH} events per request.", "events")
    return [cloudevent_to_event(r) for r in raws]
