"""Progress of a long loop, fit for a terminal and for a log file.

On a terminal (the stream is a TTY) :class:`Progress` draws a live bar,
rewritten in place with ``\\r`` as mmengine's ``ProgressBar`` does. In a
log file (output redirected, a batch job) every ``\\r`` update would pile
up into one line of tens of kilobytes; there it writes a plain line every
``interval`` seconds or every ``step`` of the total (10 % by default) and
one at the end, each well under 500 characters.

Example:
    >>> bar = Progress(total=3, title='ood')
    >>> for _ in range(3):
    ...     bar.update()
    >>> bar.close()
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, Optional, TextIO

from mmseg_ood.errors import InvalidValueError

__all__ = ['Progress', 'progress', 'MAX_LINE']

#: The longest line :class:`Progress` writes (the title is shortened to
#: fit).
MAX_LINE = 200


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds}s'
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f'{minutes}m{seconds:02d}s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours}h{minutes:02d}m'


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Count done out of ``total``, rate, elapsed time and ETA.

    Args:
        total: How many items the loop has (0: unknown, only the count is
            shown).
        title: Shown at the start of each line (shortened to keep every
            line under :data:`MAX_LINE` characters).
        unit: What an item is, in the rate (``'images'`` -> ``images/s``).
        stream: Where to write; ``None``: ``sys.stdout`` at the time of
            each write.
        live: Draw a live bar (``True``) or write plain lines (``False``);
            ``None``: live when ``stream`` is a terminal.
        interval: Plain lines: the most seconds between two lines.
        step: Plain lines: a line each time this fraction of ``total`` is
            passed (``0.1``: every 10 %).
        clock: Seconds, monotonic (for tests).

    Raises:
        InvalidValueError: ``total`` < 0, ``interval`` <= 0 or ``step``
            outside (0, 1].
    """

    def __init__(self,
                 total: int,
                 title: str = '',
                 unit: str = 'items',
                 stream: Optional[TextIO] = None,
                 live: Optional[bool] = None,
                 interval: float = 5.0,
                 step: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        if int(total) < 0:
            raise InvalidValueError(f'`total` must be >= 0, got {total}')
        if not interval > 0:
            raise InvalidValueError(
                f'`interval` must be > 0 seconds, got {interval}')
        if not 0 < step <= 1:
            raise InvalidValueError(f'`step` must be in (0, 1], got {step}')
        self.total = int(total)
        self.title = ' '.join(str(title).split())[:MAX_LINE // 2]
        self.unit = unit
        self._stream = stream
        self.live = _is_terminal(self.stream) if live is None else bool(live)
        self.interval = float(interval)
        self.step = float(step)
        self._clock = clock
        self.completed = 0
        self._start = clock()
        self._last_time = self._start
        self._last_step = 0
        self._last_written: Optional[int] = None  # count of the last line
        self._drawn = 0  # length of the live bar's line
        self._closed = False
        if self.live:
            self._draw()

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stdout

    @property
    def task_num(self) -> int:
        """``total`` (the name mmengine's ``ProgressBar`` uses)."""
        return self.total

    def update(self, num: int = 1) -> None:
        """Count ``num`` more items done and show the progress if it is
        time to."""
        self.completed += num
        now = self._clock()
        if self.live:
            self._draw(now)
            return
        step = (int(self.completed / self.total / self.step + 1e-9)
                if self.total else 0)
        done = self.total and self.completed >= self.total
        if step > self._last_step or done or \
                now - self._last_time >= self.interval:
            self._last_step = step
            self._last_time = now
            if self._last_written != self.completed:
                self._write_line(self._status(now))

    def close(self) -> None:
        """End the progress: the live bar's line ends; in plain lines, a
        last line unless the last one written already has the final
        count."""
        if self._closed:
            return
        self._closed = True
        if self.live:
            self.stream.write('\n')
            self.stream.flush()
        elif self._last_written != self.completed:
            self._write_line(self._status(self._clock()))

    def __enter__(self) -> 'Progress':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the text

    def _status(self, now: float) -> str:
        """``12/40 (30%), 3.1 images/s, elapsed 4s, ETA 9s``."""
        elapsed = max(now - self._start, 0.0)
        rate = self.completed / elapsed if elapsed > 0 else 0.0
        if self.total:
            text = (f'{self.completed}/{self.total} '
                    f'({100 * self.completed // max(self.total, 1)}%)')
        else:
            text = f'{self.completed}'
        text += f', {rate:.1f} {self.unit}/s, elapsed {_duration(elapsed)}'
        left = self.total - self.completed
        if self.total and rate > 0 and left > 0:
            text += f', ETA {_duration(left / rate)}'
        return text

    def _write_line(self, status: str) -> None:
        line = f'{self.title} {status}' if self.title else status
        self._last_written = self.completed
        self.stream.write(line[:MAX_LINE] + '\n')
        self.stream.flush()

    def _draw(self, now: Optional[float] = None) -> None:
        now = self._clock() if now is None else now
        status = self._status(now)
        prefix = f'{self.title} ' if self.title else ''
        columns = min(shutil.get_terminal_size((80, 24)).columns, MAX_LINE)
        width = columns - len(prefix) - len(status) - 4
        if self.total and width >= 10:
            width = min(width, 40)
            filled = int(width * min(self.completed / self.total, 1.0))
            bar = f'[{">" * filled}{" " * (width - filled)}] '
        else:
            bar = ''
        line = (prefix + bar + status)[:max(columns - 1, 1)]
        # spaces over the end of a longer previous line
        self.stream.write('\r' + line.ljust(self._drawn))
        self._drawn = len(line)
        self.stream.flush()


def progress(total: int, title: str = '', unit: str = 'items',
             stream: Optional[TextIO] = None) -> Progress:
    """A :class:`Progress` over ``total`` items: a live bar on a terminal,
    a plain line every 5 s or 10 % otherwise.

    Args:
        total: How many items (0: unknown).
        title: Shown at the start of each line.
        unit: What an item is (``'images'``, ``'frames'``).
        stream: Where to write (``None``: ``sys.stdout``).

    Returns:
        Progress: Call ``update()`` per item and ``close()`` at the end (or
        use it as a context manager).
    """
    return Progress(total, title=title, unit=unit, stream=stream)
