"""What kind of output kssl writes to: a live display (a terminal, a notebook) or a log.

Progress that rewrites its line in place (Keras' bar, tqdm's) suits a live display; in a
log file or a pipe it becomes thousands of carriage-return updates on one line, so there
kssl prints whole lines instead (`kssl.training.progress.StepProgress` for training,
`progress_lines` for file listing, decoding and embedding).
"""

from __future__ import annotations

import sys
import time


def live_display(stream) -> bool:
    """Whether `stream` shows a line rewritten in place: a terminal or a Jupyter notebook's
    output (Keras' progress bar assumes it of any POSIX stream, so a log file gets thousands
    of carriage-return updates on one line).

    Examples:
        >>> import io
        >>> live_display(io.StringIO())
        False
    """
    if getattr(stream, "isatty", lambda: False)():
        return True
    kernel_stream = getattr(sys.modules.get("ipykernel.iostream"), "OutStream", None)
    return kernel_stream is not None and isinstance(stream, kernel_stream)


class progress_lines:  # noqa: N801 - used as tqdm is
    """tqdm's interface (`update`, `n`, `close`, a context manager) in whole lines, for a log:
    a line every `every_seconds`, and one at the end when the work took `quiet_seconds` or more
    (listing a few folders says nothing).

    Examples:
        >>> import io
        >>> stream = io.StringIO()
        >>> with progress_lines(3, "Decoding", "img", stream, quiet_seconds=0) as bar:
        ...     bar.update(3)
        >>> stream.getvalue().split(" in ")[0]
        'Decoding: 3 of 3 img'
    """

    def __init__(self, total, description, unit="img", stream=None, every_seconds=30.0, quiet_seconds=2.0):
        self.total, self.description, self.unit = int(total), description, unit
        self.stream = stream or sys.stderr
        self.every_seconds, self.quiet_seconds = every_seconds, quiet_seconds
        self.n, self._started = 0, time.perf_counter()
        self._last, self._printed, self._closed = self._started, False, False

    def update(self, count=1):
        self.n += count
        now = time.perf_counter()
        if now - self._last >= self.every_seconds:
            self._line(now)

    def _line(self, now):
        print(f"{self.description}: {self.n:,} of {self.total:,} {self.unit} in {now - self._started:.1f} s",
              file=self.stream, flush=True)  # fmt: skip
        self._last, self._printed = now, True

    def close(self):
        if self._closed:
            return
        self._closed = True
        now = time.perf_counter()
        if self._printed or now - self._started >= self.quiet_seconds:
            self._line(now)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(total: int, description: str, enabled: bool = True, unit: str = "img"):
    """A tqdm progress bar with a total (to stderr) on a terminal or in a notebook, whole
    lines in a log (`progress_lines`), or a silent stand-in."""
    from tqdm.auto import tqdm

    if enabled and not live_display(sys.stderr):
        return progress_lines(total, description, unit)
    return tqdm(total=total, desc=description, unit=unit, disable=not enabled)
