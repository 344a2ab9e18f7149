"""The flush pacer: a streaming reply is drawn often on a fast UI, less often on a slow one."""

from __future__ import annotations

import pytest

from leverchat.ui.flush_pacer import FlushPacer


class FakeClocks:
    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0

    def advance(self, wall: float, cpu: float = 0.0) -> None:
        self.wall += wall
        self.cpu += cpu


def pacer(clocks: FakeClocks, **kwargs: float) -> FlushPacer:
    options = {"budget_share": 0.05, "min_interval": 0.05, "max_interval": 0.25} | kwargs
    return FlushPacer(clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu, **options)


def test_the_first_text_of_a_reply_is_drawn_at_once() -> None:
    clocks = FakeClocks()
    flush = pacer(clocks)
    flush.start()
    assert flush.due()


def test_a_cheap_ui_draws_at_the_minimum_interval() -> None:
    clocks = FakeClocks()
    flush = pacer(clocks)
    flush.start()
    flush.flushed()
    clocks.advance(0.04, cpu=0.001)
    assert not flush.due()
    clocks.advance(0.01)
    assert flush.due()


def test_an_expensive_ui_draws_less_often_to_stay_within_its_budget() -> None:
    clocks = FakeClocks()
    flush = pacer(clocks)
    flush.start()
    flush.flushed()
    # The last flush's layout took 8 ms: at a 5 % budget the next one waits 160 ms.
    clocks.advance(0.1, cpu=0.008)
    assert flush.next_interval() == pytest.approx(0.16)
    assert not flush.due()
    clocks.advance(0.061)
    assert flush.due()


def test_a_reply_never_looks_stuck_for_longer_than_the_maximum_interval() -> None:
    clocks = FakeClocks()
    flush = pacer(clocks)
    flush.start()
    flush.flushed()
    clocks.advance(0.249, cpu=0.2)  # the user typed a lot, say
    assert not flush.due()
    clocks.advance(0.001)
    assert flush.due()


def test_flushing_restarts_the_budget() -> None:
    clocks = FakeClocks()
    flush = pacer(clocks)
    flush.start()
    clocks.advance(0.3, cpu=0.01)
    flush.flushed()
    assert flush.next_interval() == pytest.approx(0.05)


@pytest.mark.parametrize(
    "options",
    [{"budget_share": 0.0}, {"budget_share": 1.5}, {"min_interval": 0.0}, {"min_interval": 0.5}],
)
def test_bad_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        pacer(FakeClocks(), **options)
