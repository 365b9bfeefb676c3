"""Plotly figures of the Forecast tab: actuals and forecast with its band and the loss date;
the what-if's before/after bars. Floats only here, for drawing."""
from __future__ import annotations

import plotly.graph_objects as go

from cogs.figures import _LAYOUT, COLORS, _as_dict, _f
from intelligence.forecast import Forecast
from intelligence.whatif import WhatIf

BAND = {"cogs": "rgba(240,68,56,0.15)", "revenue": "rgba(18,183,106,0.15)"}


def forecast_figure(result: Forecast) -> dict:
    """Daily (or monthly) actuals, then the forecast's means dashed inside their interval
    bands, and the first day forecast COGS exceeds revenue marked."""
    fig = go.Figure()
    monthly = result.horizon == "12m"
    history = result.history
    active = next((i for i, d in enumerate(history) if d.cogs_usd or d.revenue_usd), None)
    history = history[active:] if active is not None else []  # from the first active day
    if monthly:  # the actuals summed by month, to read on the forecast's scale
        months: dict = {}
        for day in history:
            key = day.day.replace(day=1)
            cogs, revenue = months.get(key, (0, 0))
            months[key] = (cogs + day.cogs_usd, revenue + day.revenue_usd)
        forecast_months = {p.day for p in result.points}
        actual_x = [k.isoformat() for k in months if k not in forecast_months]
        actual = [months[k] for k in months if k not in forecast_months]
    else:
        actual_x = [d.day.isoformat() for d in history]
        actual = [(d.cogs_usd, d.revenue_usd) for d in history]
    x = [p.day.isoformat() for p in result.points]
    for name, index, color in (("Revenue", 1, "revenue"), ("COGS", 0, "cogs")):
        fig.add_trace(go.Scatter(x=actual_x, y=[_f(a[index]) for a in actual],
                                 name=f"{name} (actual)", mode="lines",
                                 line={"color": COLORS[color], "width": 2}))
    for name, color, lower, upper, mean in (
            ("Revenue", "revenue", "revenue_lower", "revenue_upper", "revenue_usd"),
            ("COGS", "cogs", "cogs_lower", "cogs_upper", "cogs_usd")):
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[_f(getattr(p, upper)) for p in result.points]
                                 + [_f(getattr(p, lower)) for p in result.points][::-1],
                                 fill="toself", fillcolor=BAND[color], line={"width": 0},
                                 hoverinfo="skip", name=f"{name} {result.level:.0f}% interval"))
        fig.add_trace(go.Scatter(x=x, y=[_f(getattr(p, mean)) for p in result.points],
                                 name=f"{name} (forecast)", mode="lines",
                                 line={"color": COLORS[color], "width": 2, "dash": "dash"}))
    shapes, annotations = [], []
    loss = result.first_loss_date
    if loss is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": loss.isoformat(),
                       "x1": loss.isoformat(), "y0": 0, "y1": 1,
                       "line": {"color": COLORS["cogs"], "width": 2, "dash": "dot"}})
        annotations.append({"x": loss.isoformat(), "y": 1, "xref": "x", "yref": "paper",
                            "text": f"COGS exceeds revenue {loss:%b %-d, %Y}",
                            "showarrow": False, "yanchor": "bottom",
                            "font": {"color": COLORS["cogs"]}})
    fig.update_layout(**_LAYOUT, title={"text": "Revenue vs COGS: actuals and forecast", "x": 0},
                      yaxis={"title": "USD", "rangemode": "tozero", "tickprefix": "$"},
                      hovermode="x unified", height=380, shapes=shapes,
                      annotations=annotations)
    return _as_dict(fig)


def what_if_figure(result: WhatIf) -> dict:
    """COGS, expected revenue and margin, before and after the change."""
    labels = ["COGS", "Revenue", "Margin"]
    fig = go.Figure()
    for name, figures, color in (("Before", result.total.before, "#98a2b3"),
                                 ("After", result.total.after, COLORS["bar"])):
        fig.add_trace(go.Bar(x=labels, y=[_f(figures.cogs_usd), _f(figures.revenue_usd),
                                          _f(figures.margin_usd)], name=name,
                             marker={"color": color},
                             hovertemplate="%{x} " + name + "<br>$%{y:,.4f}<extra></extra>"))
    fig.update_layout(**_LAYOUT, barmode="group", title={"text": "Before and after", "x": 0},
                      yaxis={"tickprefix": "$", "zeroline": True}, height=320)
    return _as_dict(fig)
