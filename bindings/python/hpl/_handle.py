"""A C handle shared by threads: each call holds a "use" of it; close() refuses new uses and
waits for the running ones to end, so a handle is never freed while another thread is inside
a call with it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from .errors import InvalidArgumentError


class Handle:
    def __init__(self, value: int, what: str) -> None:
        self.value: Optional[int] = value
        self._what = what
        self._cv = threading.Condition(threading.RLock())  # reentrant: __del__ may run anywhere
        self._uses = 0
        self.closing = False
        self._closer = 0  # thread running close()

    @contextmanager
    def use(self) -> Iterator[int]:
        with self._cv:
            if self.closing or not self.value:
                raise InvalidArgumentError(1, f"the {self._what} is closed")
            self._uses += 1
            h = self.value
        try:
            yield h
        finally:
            with self._cv:
                self._uses -= 1
                if self._uses == 0:
                    self._cv.notify_all()

    def begin_close(self) -> bool:
        """Refuses new uses; False if already closed or closing (by another thread)."""
        with self._cv:
            if self.closing or not self.value:
                return False
            self.closing = True
            self._closer = threading.get_ident()
            return True

    def wait_closed(self) -> None:
        """Waits for a close() running on another thread to finish (or fail)."""
        with self._cv:
            if self._closer == threading.get_ident():
                return  # re-entered from that close() itself (e.g. __del__): don't wait on it
            self._cv.wait_for(lambda: not self.closing or not self.value)

    def wait_unused(self) -> None:
        with self._cv:
            self._cv.wait_for(lambda: self._uses == 0)

    def mark_closed(self) -> None:
        with self._cv:
            self.value = None
            self._cv.notify_all()

    def reopen(self) -> None:
        """Undoes begin_close() after a failed free (the handle is still valid)."""
        with self._cv:
            self.closing = False
            self._cv.notify_all()
