"""aforo-sdk: meter AI provider calls into Aforo.

    from aforo_sdk import Aforo, meter
    aforo = Aforo("https://aforo.example.com", token, "acme")
    openai = meter.wrap(OpenAI(), product="chat")
    with meter(customer="cust_42"):
        openai.chat.completions.create(model="gpt-4o-mini", messages=[...])
"""
from aforo_sdk.client import (
    Aforo,
    AforoError,
    AsyncAforo,
    Blocked,
    Decision,
    GuardUnavailable,
    RateLimited,
    default_client,
    event_id,
)
from aforo_sdk.meter import meter
from aforo_sdk.usage import Usage

__all__ = ["Aforo", "AsyncAforo", "AforoError", "Blocked", "Decision", "GuardUnavailable",
           "RateLimited", "Usage", "default_client", "event_id", "meter", "guard"]
__version__ = "0.1.0"


def guard(customer: str, product: str | None = None, model: str | None = None,
          feature: str | None = None) -> str | None:
    """The default client's guard: the model to call, or `Blocked`."""
    client = default_client()
    if client is None:
        raise AforoError("no Aforo client: make Aforo(...) or set AFORO_BASE_URL")
    return client.guard(customer, product, model, feature)
