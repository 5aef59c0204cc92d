"""The browsers watching one thing (the events, the video): a bounded queue each of
what it has still to be sent. Sending never waits: a browser whose queue is full has
stopped reading or fallen too far behind, and is let go with END, so one slow browser
never holds up the daemon or the others."""

from __future__ import annotations

import queue
import threading

END = None          # what a browser's queue ends with: its answer is over


class Watchers:
    def __init__(self, most: int, queue_size: int):
        self.most = most
        self.queue_size = queue_size
        self._queues: list[queue.Queue] = []
        self._lock = threading.Lock()
        self._closed = False

    def join(self, first=None) -> queue.Queue | None:
        """A new browser's queue (holding `first`, when given), or None when `most`
        already watch or watching has ended."""
        q: queue.Queue = queue.Queue(self.queue_size)
        with self._lock:
            if len(self._queues) >= self.most or self._closed:
                return None
            if first is not None:
                q.put_nowait(first)
            self._queues.append(q)
        return q

    def leave(self, q: queue.Queue) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def send(self, item) -> None:
        """`item` to every browser watching; one that cannot take it is let go."""
        with self._lock:
            queues = list(self._queues)
        for q in queues:
            try:
                q.put_nowait(item)
            except queue.Full:
                self.leave(q)
                end(q)

    def close(self) -> None:
        """Every browser's answer ends; no one joins any more."""
        with self._lock:
            queues, self._queues = self._queues, []
            self._closed = True
        for q in queues:
            end(q)

    def __len__(self) -> int:
        with self._lock:
            return len(self._queues)


def end(q: queue.Queue) -> None:
    """END into `q`, dropping the oldest items to make room: the browser stops at once."""
    while True:
        try:
            q.put_nowait(END)
            return
        except queue.Full:
            try:
                q.get_nowait()
            except queue.Empty:
                pass
