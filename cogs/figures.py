"""Plotly figures for the console tabs, built in Python from the query results.

Each function returns the figure as a plain dict (Plotly's JSON), which the template embeds
with `json_script` (escaped) and `static/console/console.js` draws with the bundled plotly.js.
Amounts become floats only here, for drawing; every number printed in a table stays Decimal.
"""
from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal

import plotly.graph_objects as go

from cogs.queries import Totals

COLORS = {"revenue": "#12b76a", "cogs": "#f04438", "ai": "#2e90fa", "infra": "#7a5af8",
          "fee": "#f79009", "unclassified": "#98a2b3", "bar": "#2e90fa"}
PALETTE = ["#2e90fa", "#7a5af8", "#f79009", "#12b76a", "#ee46bc", "#06aed4", "#98a2b3",
           "#f04438", "#66c61c", "#6172f3"]
_LAYOUT = {"margin": {"l": 48, "r": 16, "t": 36, "b": 40}, "font": {"family": "system-ui"},
           "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
           "legend": {"orientation": "h", "y": -0.15}}


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def label(text: str) -> str:
    """A user-supplied name as Plotly text: plotly.js reads a few HTML tags in labels and
    decodes entities, so escaping shows `<b>` or `<script>` literally and never as markup."""
    return html.escape(text or "(none)", quote=False)


def _as_dict(fig: go.Figure) -> dict:
    # to_json handles every type Plotly accepts; the dict goes through json_script unchanged.
    return json.loads(fig.to_json())


def trend_figure(days: Sequence[Totals]) -> dict:
    """Revenue and COGS per day, with the day's margin % on a second axis."""
    dates = [day.key[0].isoformat() for day in days]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=dates, y=[_f(d.revenue_usd) for d in days], name="Revenue",
                             mode="lines", line={"color": COLORS["revenue"], "width": 2},
                             hovertemplate="%{x}<br>Revenue $%{y:,.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=dates, y=[_f(d.cogs_usd) for d in days], name="COGS",
                             mode="lines", line={"color": COLORS["cogs"], "width": 2},
                             hovertemplate="%{x}<br>COGS $%{y:,.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=dates, y=[_f(d.margin_pct) for d in days], name="Margin %",
                             mode="lines", yaxis="y2", line={"color": "#667085", "dash": "dot"},
                             connectgaps=False,
                             hovertemplate="%{x}<br>Margin %{y:.2f}%<extra></extra>"))
    fig.update_layout(**_LAYOUT, title={"text": "Revenue vs COGS", "x": 0},
                      yaxis={"title": "USD", "rangemode": "tozero", "tickprefix": "$"},
                      yaxis2={"title": "Margin %", "overlaying": "y", "side": "right",
                              "showgrid": False, "ticksuffix": "%"},
                      hovermode="x unified", height=340)
    return _as_dict(fig)


def donut_figure(labels: Sequence[str], values: Sequence[Decimal], title: str) -> dict:
    fig = go.Figure(go.Pie(labels=[label(t) for t in labels], values=[_f(v) for v in values],
                           hole=0.55, sort=False, marker={"colors": PALETTE[:len(labels)]},
                           texttemplate="%{percent:.1%}",
                           hovertemplate="%{label}<br>$%{value:,.4f} (%{percent})<extra></extra>"))
    fig.update_layout(**_LAYOUT, title={"text": title, "x": 0}, height=340)
    return _as_dict(fig)


COMPOSITION_SEGMENTS = (("AI Models", "ai_cogs_usd", "ai"),
                        ("Infrastructure", "infra_cogs_usd", "infra"),
                        ("Gateway Fees", "fee_cogs_usd", "fee"),
                        ("Unclassified", "unclassified_cogs_usd", "unclassified"))


def composition_figure(totals: Totals) -> dict:
    """One stacked bar: AI / infrastructure / fees / Unclassified, each its own segment."""
    fig = go.Figure()
    for label, attribute, color in COMPOSITION_SEGMENTS:
        amount = getattr(totals, attribute)
        fig.add_trace(go.Bar(
            y=["COGS"], x=[_f(amount)], name=label, orientation="h",
            marker={"color": COLORS[color]},
            hovertemplate=f"{label}<br>$%{{x:,.4f}}<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 16, "r": 16, "t": 8, "b": 24},
                         "legend": {"orientation": "h", "y": -0.35, "traceorder": "normal"}},
                      barmode="stack", height=150, yaxis={"showticklabels": False},
                      xaxis={"tickprefix": "$"})
    return _as_dict(fig)


def bar_figure(labels: Sequence[str], values: Sequence[Decimal], title: str, *,
               color: str = COLORS["bar"]) -> dict:
    """A horizontal bar per label, the largest on top."""
    fig = go.Figure(go.Bar(y=[label(t) for t in labels], x=[_f(v) for v in values], orientation="h",
                           marker={"color": color},
                           hovertemplate="%{y}<br>$%{x:,.4f}<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 140, "r": 16, "t": 36, "b": 32}},
                      title={"text": title, "x": 0}, xaxis={"tickprefix": "$"},
                      yaxis={"autorange": "reversed", "automargin": True},
                      height=max(200, 60 + 26 * len(labels)))
    return _as_dict(fig)


def margin_figure(labels: Sequence[str], margins: Sequence[Decimal]) -> dict:
    """Gross margin per product: green where it earns, red where it loses."""
    fig = go.Figure(go.Bar(
        y=[label(t) for t in labels], x=[_f(v) for v in margins], orientation="h",
        marker={"color": [COLORS["revenue"] if v >= 0 else COLORS["cogs"] for v in margins]},
        hovertemplate="%{y}<br>Margin $%{x:,.4f}<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 140, "r": 16, "t": 36, "b": 32}},
                      title={"text": "Gross margin by product", "x": 0},
                      xaxis={"tickprefix": "$", "zeroline": True},
                      yaxis={"autorange": "reversed", "automargin": True},
                      height=max(200, 60 + 26 * len(labels)))
    return _as_dict(fig)


def usage_trend_figure(days: Sequence, series: dict[str, Sequence[int]]) -> dict:
    """Each billable unit's quantity per day, one line per unit (log scale: tokens dwarf
    events)."""
    dates = [day.isoformat() for day in days]
    fig = go.Figure()
    for n, (name, values) in enumerate(series.items()):
        # a day without usage is a gap: zero has no place on a log axis
        fig.add_trace(go.Scatter(x=dates, y=[v or None for v in values], name=name,
                                 mode="lines+markers", connectgaps=False,
                                 line={"color": PALETTE[n % len(PALETTE)], "width": 2},
                                 hovertemplate=f"%{{x}}<br>{name} %{{y:,}}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title={"text": "Usage per day by billable unit", "x": 0},
                      yaxis={"type": "log", "title": "quantity"}, hovermode="x unified",
                      height=340)
    return _as_dict(fig)


def quantity_bar_figure(labels: Sequence[str], values: Sequence[int], title: str) -> dict:
    """A horizontal bar per label (quantities, not money), the largest on top."""
    fig = go.Figure(go.Bar(y=[label(t) for t in labels], x=list(values), orientation="h",
                           marker={"color": COLORS["bar"]},
                           hovertemplate="%{y}<br>%{x:,}<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 140, "r": 16, "t": 36, "b": 32}},
                      title={"text": title, "x": 0},
                      yaxis={"autorange": "reversed", "automargin": True},
                      height=max(200, 60 + 26 * len(labels)))
    return _as_dict(fig)


def session_trace_figure(steps: Sequence) -> dict:
    """A session's steps on a time axis, one row per kind (model call, reasoning, tool), the
    marker's size its cost."""
    kinds = ["MODEL", "REASONING", "TOOL"]
    colors = {"MODEL": PALETTE[0], "REASONING": PALETTE[1], "TOOL": PALETTE[2]}
    biggest = max((s.cogs_usd for s in steps), default=Decimal(0)) or Decimal(1)
    fig = go.Figure()
    for kind in kinds:
        mine = [s for s in steps if s.kind == kind]
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[s.occurred_at.isoformat() for s in mine], y=[kind] * len(mine), name=kind,
            mode="markers", marker={"color": colors[kind],
                                    "size": [8 + 22 * float(s.cogs_usd / biggest) for s in mine]},
            text=[label(f"{s.event_id} · {s.agent or 'no agent'}"
                        + (f" · {s.tool_name}" if s.tool_name else "")) for s in mine],
            hovertemplate="%{text}<br>%{x}<extra></extra>"))
    fig.update_layout(**_LAYOUT, title={"text": "Session trace", "x": 0},
                      yaxis={"categoryorder": "array", "categoryarray": kinds}, height=260)
    return _as_dict(fig)
