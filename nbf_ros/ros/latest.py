"""A one-slot mailbox between the subscription callback and the worker: latest frame wins.

Why: a slow model must never build a queue (memory grows, latency drifts). The callback
``put``s and returns at once; if a frame was still waiting, it is replaced and counted as
dropped. The worker ``take``s whatever is newest. Bounded by construction: one item.
"""
from __future__ import annotations

import threading
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Thread-safe single-item slot; ``dropped`` counts items replaced before being taken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Optional[T] = None
        self._closed = False
        self.dropped = 0
        self.accepted = 0

    def put(self, item: T) -> bool:
        """Store ``item``; return True if it replaced a pending one (that one is dropped)."""
        with self._cond:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self.accepted += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """The pending item (removing it), waiting up to ``timeout`` s; None on timeout/close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> None:
        with self._cond:
            self._item = None

    def close(self) -> None:
        """Wake every waiter; later ``take`` calls return at once."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
