"""The impact report's split of a window into whole UTC days (read from the daily read models)
and partial days' seconds (read from the per-second ones): together exactly the window, each
whole day midnight to midnight, and no whole day holding a cut inside, so a flag `since cut`
puts every day on one side."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from margin_guard.impact import day_split

T0 = datetime(2026, 3, 30, tzinfo=timezone.utc)
seconds = st.one_of(st.sampled_from([0, 1, 86399, 86400, 86401, 3 * 86400]),
                    st.integers(0, 6 * 86400))
moments = seconds.map(lambda s: T0 + timedelta(seconds=s))


def _covered(windows) -> set[int]:
    """The seconds (from T0) the windows hold."""
    return {s for start, end in windows
            for s in range(int((start - T0).total_seconds()), int((end - T0).total_seconds()))}


@given(window=st.tuples(moments, moments), cuts=st.lists(moments, max_size=3))
def test_days_and_seconds_are_the_window_and_no_day_straddles_a_cut(window, cuts):
    start, end = sorted(window)
    days, partial = day_split(start, end, cuts)
    for first, last in days:
        assert first.timestamp() % 86400 == 0 and last.timestamp() % 86400 == 0
        assert first < last
        assert not any(first < cut < last and cut.timestamp() % 86400 for cut in cuts)
    whole, edges = _covered(days), _covered(partial)
    assert not whole & edges
    assert whole | edges == _covered([(start, end)])
    for windows in (days, partial):  # sorted, disjoint, touching ones joined
        assert all(a[1] < b[0] for a, b in zip(windows, windows[1:], strict=False))


def test_a_month_is_its_whole_days_and_two_partial_ones():
    start = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    end = datetime(2026, 4, 1, 9, 30, tzinfo=timezone.utc)
    days, partial = day_split(start, end, [datetime(2026, 3, 20, 12, tzinfo=timezone.utc)])
    midnight = datetime(2026, 3, 20, tzinfo=timezone.utc)
    assert days == [(datetime(2026, 3, 3, tzinfo=timezone.utc), midnight),
                    (midnight + timedelta(days=1), datetime(2026, 4, 1, tzinfo=timezone.utc))]
    assert partial == [(start, datetime(2026, 3, 3, tzinfo=timezone.utc)),
                       (midnight, midnight + timedelta(days=1)),
                       (datetime(2026, 4, 1, tzinfo=timezone.utc), end)]
