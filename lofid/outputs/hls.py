"""HLS: the player's H.264 + AAC packets as MPEG-TS segments and a rolling playlist,
for putting lofid behind any web server (or a phone's browser, which plays HLS itself).

`-o DIR/stream.m3u8` writes DIR/stream.m3u8 and DIR/stream-00001.ts ...: a segment
starts at each keyframe (every 2 s; the player's GOPs are closed), the playlist names
the last SEGMENTS of them, and older ones are deleted, so the folder stays the same
size however long lofid plays. Nothing is encoded: libavformat's HLS muxer cuts the
packets lofid.outputs.mux places, as every other packet output gets them. The
playlist is replaced atomically (written aside, renamed), so a web server never
serves half of one.
"""

from __future__ import annotations

import os

from lofid.media import Packet, StreamInfo
from lofid.outputs.base import Output
from lofid.outputs.file import PacketWriter, check_file_target

SEGMENT_SECONDS = 2          # the player's keyframe interval: one GOP per segment
SEGMENTS = 6                 # in the playlist; a player starts about 3 segments back


class HlsOutput(Output):
    """A rolling HLS playlist and its segments in the playlist's folder. A live
    stream (lofid.player.router.is_live): paced to the clock, dropping when behind."""

    wants = "packets"

    def __init__(self, path: str | os.PathLike, on_state=None, **options):
        self.path = check_file_target(path, extensions=(".m3u8",))
        super().__init__(str(self.path), on_state)
        self._writer = None

    @property
    def segment_pattern(self) -> str:
        return str(self.path.with_name(f"{self.path.stem}-%05d.ts"))

    def _open(self, info: StreamInfo) -> None:
        options = {
            "hls_time": str(SEGMENT_SECONDS),
            "hls_list_size": str(SEGMENTS),
            # delete_segments: the rolling window; temp_file: the playlist (and each
            # segment) appear whole under their names; independent_segments: every
            # segment starts with a keyframe, so a player may start at any.
            "hls_flags": "delete_segments+temp_file+independent_segments",
            "hls_segment_type": "mpegts",
            "hls_segment_filename": self.segment_pattern,
            "start_number": "1",
        }
        self._writer = PacketWriter(str(self.path), "hls", info, options)

    def _write(self, item) -> None:
        if isinstance(item, Packet):
            self._writer.write(item)

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()       # the last segment, and EXT-X-ENDLIST: the stream ended
