"""Progress as whole lines in a log (`kssl.runtime.terminal.progress_lines`), on a fake clock."""

import io

from helpers import FakeClock

from kssl.runtime import terminal


def test_a_log_gets_a_line_every_interval_and_one_at_the_end(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(terminal, "time", clock)
    stream = io.StringIO()
    with terminal.progress_lines(100, "Decoding", "img", stream, every_seconds=30) as bar:
        for _ in range(10):
            clock.sleep(10)
            bar.update(10)
    lines = stream.getvalue().splitlines()
    assert lines == ["Decoding: 30 of 100 img in 30.0 s", "Decoding: 60 of 100 img in 60.0 s",
                     "Decoding: 90 of 100 img in 90.0 s", "Decoding: 100 of 100 img in 100.0 s"]  # fmt: skip


def test_quick_work_says_nothing_and_a_bar_can_be_silent(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(terminal, "time", clock)
    stream = io.StringIO()
    with terminal.progress_lines(3, "Listing", "folder", stream) as bar:
        clock.sleep(1.0)  # under quiet_seconds
        bar.update(3)
    assert stream.getvalue() == ""
    with terminal.progress_bar(5, "silent", enabled=False) as bar:
        bar.update(5)
    assert not terminal.live_display(io.StringIO())
