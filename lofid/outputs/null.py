"""The null output: takes everything, writes nothing, counts what it got.

For tests and benchmarks. It counts on the caller's thread, without a queue or a
worker: nothing is ever dropped, the counts are exact the moment send() returns, and
a benchmark measures the player rather than a thread hand-off.
"""

from __future__ import annotations

from lofid.media import Packet, StreamInfo
from lofid.outputs.base import Output


class NullOutput(Output):
    wants = "packets"

    def __init__(self, on_state=None, **options):
        super().__init__("null", on_state)
        self.packets = {"video": 0, "audio": 0}
        self.bytes = {"video": 0, "audio": 0}
        self.keyframes = 0
        self.last_pts: dict[str, int | None] = {"video": None, "audio": None}
        # packets whose pts did not increase over the one before (of their kind)
        self.out_of_order = 0

    def start(self, info: StreamInfo) -> None:
        self.info = info
        self._set_state("running")

    def send(self, item) -> bool:
        if self.state in ("failed", "closed"):
            return False
        self.stats.sent += 1
        if isinstance(item, Packet):
            kind = item.kind
            last = self.last_pts.get(kind)
            if last is not None and item.pts <= last:
                self.out_of_order += 1
            self.last_pts[kind] = item.pts
            self.packets[kind] = self.packets.get(kind, 0) + 1
            self.bytes[kind] = self.bytes.get(kind, 0) + len(item.data)
            self.keyframes += item.kind == "video" and item.keyframe
        self.stats.written += 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        if self.state != "closed":
            self._set_state("closed")
