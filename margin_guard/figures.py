"""The Margin Guard page's Plotly figure: each at-risk account's margin before its first
intervention and since (amounts become floats only here, for drawing)."""
from __future__ import annotations

import json

import plotly.graph_objects as go

from cogs.figures import label
from margin_guard.impact import AccountImpact

_LAYOUT = {"margin": {"l": 48, "r": 16, "t": 36, "b": 60}, "font": {"family": "system-ui"},
           "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
           "legend": {"orientation": "h", "y": -0.25}, "barmode": "group", "height": 340}


def before_after_figure(accounts: list[AccountImpact]) -> dict | None:
    if not accounts:
        return None
    names = [label(a.customer_id + (f" / {a.product_id}" if a.product_id else ""))
             for a in accounts]
    fig = go.Figure()
    for title, pick, color in (("Before intervention", lambda a: a.before, "#f04438"),
                               ("Since", lambda a: a.after, "#12b76a")):
        values = [pick(a).margin_pct for a in accounts]
        fig.add_trace(go.Bar(x=names, y=[None if v is None else float(v) for v in values],
                             name=title, marker={"color": color},
                             hovertemplate="%{x}<br>" + title + ": %{y:.2f}%<extra></extra>"))
    fig.update_layout(**_LAYOUT, title={"text": "At-risk accounts: margin % before vs after",
                                        "x": 0},
                      yaxis={"title": "Margin %", "ticksuffix": "%", "zeroline": True})
    return json.loads(fig.to_json())
