"""The benchmark's one progress line: cells done / running / crashed of the total, the elapsed time and an
estimate of what is left (from the cells finished so far).

On a terminal the line is rewritten in place (carriage return) and kept current every second; anywhere
else (a log file, CI) it is printed as a plain line whenever a cell starts or finishes. Thread-safe: the
benchmark's pool reports from its worker threads.
"""

from __future__ import annotations

import math
import sys
import threading
import time

from islesbench.grid.cell_process import CRASHED, DONE, NOT_RUN


class Progress:
    """`start(name)` when a cell starts, `finish(name, status, seconds)` when it ends, `close()` at the end."""

    def __init__(self, total: int, jobs: int = 1, stream=None, tty: bool | None = None, clock=time.monotonic,
                 refresh_seconds: float = 1.0):
        self.total, self.jobs, self.clock = total, max(1, jobs), clock
        self.stream = sys.stdout if stream is None else stream
        self.tty = _isatty(self.stream) if tty is None else tty
        self.started = clock()
        self.running: set[str] = set()
        self.finished: list[tuple[str, float]] = []  # (status, seconds)
        self.lock = threading.Lock()
        self._width = 0
        self._stop = threading.Event()
        self._ticker = None
        if self.tty and refresh_seconds:
            self._ticker = threading.Thread(target=self._tick, args=(refresh_seconds,), daemon=True,
                                            name="islesbench-progress")
            self._ticker.start()

    def start(self, name: str) -> None:
        with self.lock:
            self.running.add(name)
            self._show()

    def finish(self, name: str, status: str, seconds: float | None) -> None:
        with self.lock:
            self.running.discard(name)
            self.finished.append((status, float(seconds or 0.0)))
            self._show()

    def write(self, text: str) -> None:
        """Print a line of other output (a child's streamed output) without tearing the progress line."""
        with self.lock:
            if self.tty and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self._width = 0
            self.stream.write(text if text.endswith("\n") else text + "\n")
            if self.tty:
                self._show()
            self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        with self.lock:
            if self.tty and self._width:
                self.stream.write("\n")
                self._width = 0
            self.stream.flush()

    def line(self) -> str:
        """The progress line as it stands."""
        counts = {}
        for status, _ in self.finished:
            counts[status] = counts.get(status, 0) + 1
        done, crashed = counts.get(DONE, 0), counts.get(CRASHED, 0)
        other = len(self.finished) - done - crashed
        text = f"benchmark: {done} done, {len(self.running)} running, {crashed} crashed"
        if other:
            text += f", {other} not run or partial"
        elapsed = self.clock() - self.started
        text += f" of {self.total} cells; elapsed {fmt_duration(elapsed)}; ETA {self.eta()}"
        return text

    def eta(self) -> str:
        """What is left: the mean time of the cells that trained so far times the cells left, over the pool's
        width (a cell that did not run ends in seconds and says nothing of how long training takes)."""
        left = self.total - len(self.finished)
        if left <= 0:
            return "0 s"
        trained = [seconds for status, seconds in self.finished if status != NOT_RUN]
        if not trained:
            return "after the first cell"
        mean = sum(trained) / len(trained)
        return fmt_duration(mean * math.ceil(left / self.jobs))

    def _show(self) -> None:
        text = self.line()
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self.lock:
                self._show()


class NoProgress:
    """Progress that shows nothing (a library call)."""

    def start(self, name: str) -> None:
        pass

    def finish(self, name: str, status: str, seconds) -> None:
        pass

    def write(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        pass


def fmt_duration(s: float) -> str:
    """`42 s`, `3.5 min` or `2.1 h`."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
