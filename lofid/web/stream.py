"""The page's live picture: the player's packets as fragmented MP4, for Media Source
Extensions in the browser. Nothing is encoded: the packets every output gets are
muxed once here, and each fragment goes to every browser watching.

One muxer for all browsers (lofid.outputs.mux's PacketMuxer into memory, MP4 with
movflags frag_keyframe+empty_moov+default_base_moof, and a fragment at least every
FRAGMENT_S): its bytes are cut into whole top-level boxes. ftyp+moov is the init
segment every browser gets first; each moof+mdat that follows is one fragment. A
fragment comes out as soon as it is complete, so the page can play within about
FRAGMENT_S of the clock. Every keyframe (each 2 s: the player's GOPs are closed)
begins a fragment, and the fragments since the newest keyframe are kept: a browser
that joins gets them first, and decodes from their first byte.

A browser that does not keep up (its queue of fragments full) is dropped; the
others and the player never wait for it.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading

from lofid.media import Packet, StreamInfo
from lofid.outputs.base import Output
from lofid.outputs.mux import PacketMuxer
from lofid.web.watchers import Watchers

log = logging.getLogger("lofid.web")

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
FRAGMENT_S = 0.5              # the longest fragment: what the page waits for at the least
KEEP_FRAGMENTS = 16           # since the newest keyframe, for browsers that join
CLIENT_FRAGMENTS = 32         # a browser may fall this many fragments (~16 s) behind
MAX_CLIENTS = 32


def codecs_of(info: StreamInfo) -> str:
    """The RFC 6381 codecs parameter of the stream: avc1.PPCCLL (from the SPS the
    player's encoder made) and AAC-LC."""
    data = bytes(info.video_extradata or b"")
    sps = None
    if data[:1] == b"\x01" and len(data) >= 4:           # avcC
        sps = data[1:4]
    else:                                                 # Annex B: find the SPS NAL
        for start in (i for i in range(len(data) - 4) if data[i:i + 3] == b"\x00\x00\x01"):
            if data[start + 3] & 0x1F == 7 and start + 7 <= len(data):
                sps = data[start + 4:start + 7]
                break
    video = f"avc1.{sps.hex().upper()}" if sps else "avc1.42E01E"
    return f'{video}, mp4a.40.2'


def _boxes(data: bytes, start: int, end: int):
    """(type, offset, size) of the boxes in data[start:end]."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        if size < 8:
            return
        yield kind, start, size
        start += size


def starts_with_keyframe(moof: bytes, track: int = 1) -> bool:
    """Whether the fragment's first sample of `track` (the video: the first stream the
    muxer adds) is a sync sample, read from its traf (ISO/IEC 14496-12 8.8.7, 8.8.8):
    the trun's first-sample flags, else the sample's own flags, else the tfhd's
    default flags. Anything it cannot read counts as no keyframe: a browser then only
    waits for the next one."""
    def u32(at):
        return struct.unpack_from(">I", moof, at)[0]
    try:
        for kind, at, size in _boxes(moof, 8, len(moof)):
            if kind != b"traf":
                continue
            this, default = None, None
            for sub, p, n in _boxes(moof, at + 8, at + size):
                flags = u32(p + 8) & 0xFFFFFF
                if sub == b"tfhd":
                    this, q = u32(p + 12), p + 16
                    q += 8 * bool(flags & 0x1) + 4 * bool(flags & 0x2) \
                        + 4 * bool(flags & 0x8) + 4 * bool(flags & 0x10)
                    if flags & 0x20:
                        default = u32(q)
                elif sub == b"trun" and this == track:
                    q = p + 16 + 4 * bool(flags & 0x1)
                    if flags & 0x4:
                        sample = u32(q)
                    elif flags & 0x400:
                        sample = u32(q + 4 * bool(flags & 0x100) + 4 * bool(flags & 0x200))
                    elif default is not None:
                        sample = default
                    else:
                        return False
                    return not sample & 0x10000      # sample_is_non_sync_sample
    except struct.error:
        return False
    return False


class _Boxes:
    """A write-only file for the muxer that hands on whole top-level MP4 boxes."""

    def __init__(self, on_box):
        self._buf = bytearray()
        self._on_box = on_box

    def write(self, data) -> int:
        self._buf += data
        while len(self._buf) >= 8:
            size, kind = struct.unpack(">I4s", self._buf[:8])
            if size == 1 and len(self._buf) >= 16:
                size = struct.unpack(">Q", self._buf[8:16])[0]
            if size < 8 or len(self._buf) < size:
                break
            box = bytes(self._buf[:size])
            del self._buf[:size]
            self._on_box(kind.decode("latin-1"), box)
        return len(data)

    def flush(self) -> None:
        pass


class WebStream(Output):
    """The output the page's video plays (named "web" in the outputs list)."""

    wants = "packets"

    def __init__(self, on_state=None):
        super().__init__("web", on_state)
        self.codecs = None
        self.mime = None
        self._lock = threading.Lock()
        self._init = b""              # ftyp + moov
        self._pending = b""           # the moof waiting for its mdat
        self._since_key: list[bytes] = []   # the fragments from the newest keyframe on
        self.watchers = Watchers(MAX_CLIENTS, CLIENT_FRAGMENTS + 2)
        self._muxer = None
        self.fragments = 0

    # --- the browsers' side (HTTP threads) -------------------------------------------

    def join(self) -> "queue.Queue | None":
        """A queue of the stream's bytes for one browser: the init segment and the
        newest fragment first, then each new fragment; END when the stream ends.
        None when MAX_CLIENTS already watch or the stream is not running."""
        with self._lock:
            if self.state in ("failed", "closed"):
                return None
            # Under the lock: a fragment made meanwhile is either in `first` or sent.
            return self.watchers.join(self._init + b"".join(self._since_key) if self._init
                                      else None)

    def leave(self, q: queue.Queue) -> None:
        self.watchers.leave(q)

    @property
    def watching(self) -> int:
        return len(self.watchers)

    # --- the worker --------------------------------------------------------------------

    def _open(self, info: StreamInfo) -> None:
        import av
        self.codecs = codecs_of(info)
        self.mime = f'video/mp4; codecs="{self.codecs}"'
        container = av.open(_Boxes(self._box), mode="w", format="mp4",
                            options={"movflags": MOVFLAGS, "flush_packets": "1",
                                     "frag_duration": str(int(FRAGMENT_S * 1e6))})
        self._muxer = PacketMuxer(container, info)

    def _write(self, item) -> None:
        if isinstance(item, Packet):
            self._muxer.write(item)

    def _close(self) -> None:
        muxer, self._muxer = self._muxer, None
        try:
            if muxer is not None:
                muxer.close()
        finally:
            self.watchers.close()

    def _box(self, kind: str, box: bytes) -> None:
        if kind in ("ftyp", "moov"):
            self._init += box
            if kind == "moov":            # browsers that joined before it: init first
                with self._lock:
                    self.watchers.send(self._init)
        elif kind == "moof":
            self._pending = box
        elif kind == "mdat" and self._pending:
            self._fragment(self._pending + box)
            self._pending = b""
        # mfra and the like at the end: nothing a live player needs

    def _fragment(self, data: bytes) -> None:
        key = starts_with_keyframe(data)
        with self._lock:
            if key:
                self._since_key = [data]
            elif self._since_key and len(self._since_key) < KEEP_FRAGMENTS:
                self._since_key.append(data)
            self.fragments += 1
            # Under the lock, as join() reads _since_key: no browser misses a fragment
            # or gets one twice. Sending never waits.
            self.watchers.send(data)
