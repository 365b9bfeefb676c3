"""A session's trace in the console (the AI Billing page's agent trace): its events in time
order with their kind, agent, tool, usage and money, reached from a Transactions row."""
from __future__ import annotations

from aforo.console import PageError, tab_page
from cogs import figures
from cogs.queries.agents import session_trace


def _session(session_id: str):
    def build(request, tenant, chosen) -> dict:
        steps = session_trace(tenant, chosen.period, session_id)
        if not steps:
            raise PageError(f"Session {session_id} has no events in {chosen.label}.", 404)
        cogs = sum(s.cogs_usd for s in steps)
        revenue = sum(s.revenue_usd for s in steps)
        return {"session_id": session_id, "steps": steps,
                "duration_seconds": int((steps[-1].occurred_at
                                         - steps[0].occurred_at).total_seconds()),
                "cogs": cogs, "revenue": revenue, "margin": revenue - cogs,
                "tool_calls": sum(s.tool_calls for s in steps),
                "reasoning_steps": sum(s.reasoning_steps for s in steps),
                "trace_figure": figures.session_trace_figure(steps)}

    return build


def session_page(request, session_id: str):
    return tab_page("session", _session(session_id))(request)
