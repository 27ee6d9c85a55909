"""The sliding window behind the public demo's rate limits (demo/recent.py)."""

from visual_search.demo.recent import FORGET_PAST, RecentTimes


def test_events_leave_the_window_and_idle_keys_are_forgotten():
    recent = RecentTimes(60.0)
    recent.add("a", 0.0, 3)
    recent.add("a", 30.0)
    assert list(recent.times("a", 59.9)) == [0.0, 0.0, 0.0, 30.0]
    assert list(recent.times("a", 60.0)) == [30.0]  # an event exactly a window old has left it
    assert list(recent.times("never seen", 60.0)) == []
    # a flood of one-off keys (visitors, addresses) does not grow without bound
    for i in range(FORGET_PAST + 1):
        recent.add(f"k{i}", float(i) / 1000)
    recent.add("late", 200.0)  # every earlier key's events have left the window by now
    assert len(recent) == 1 and list(recent.times("late", 200.0)) == [200.0]
    recent.forget("late")
    assert list(recent.times("late", 200.0)) == []
