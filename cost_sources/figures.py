"""Plotly figure of the Cost sources tab: the reconciliation gap per group and day. Floats only
here, for drawing."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from cogs.figures import _LAYOUT, PALETTE, _as_dict, _f, label
from cost_sources.queries import ReconciliationRow


def reconciliation_figure(rows: Sequence[ReconciliationRow]) -> dict:
    """Billed minus metered per day, one line per group: above zero the events carry less than
    the bill (under-metered), below it more."""
    fig = go.Figure()
    groups: dict[str, list[ReconciliationRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for index, (group, series) in enumerate(sorted(groups.items())):
        fig.add_trace(go.Scatter(
            x=[r.day.isoformat() for r in series], y=[_f(r.gap_usd) for r in series],
            name=label(group or "(none)"), mode="lines+markers",
            line={"color": PALETTE[index % len(PALETTE)], "width": 2},
            customdata=[[_f(r.billed_usd), _f(r.metered_usd), r.status] for r in series],
            hovertemplate="%{x}: gap $%{y:.2f}<br>billed $%{customdata[0]:.2f}, metered "
                          "$%{customdata[1]:.2f}<br>%{customdata[2]}<extra></extra>"))
    fig.add_hline(y=0, line={"color": "#98a2b3", "width": 1})
    fig.update_layout(**_LAYOUT, title={"text": "Gap per day: billed minus metered", "x": 0},
                      xaxis={"type": "date", "tickformat": "%b %-d", "dtick": 86_400_000},
                      yaxis={"title": "USD", "tickprefix": "$"}, hovermode="closest")
    return _as_dict(fig)
