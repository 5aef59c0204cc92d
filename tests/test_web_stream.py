"""The page's stream: fragmented MP4 cut from the player's packets, read back by a
demuxer as a browser joining mid-stream gets it."""

from __future__ import annotations

import io

import av
from helpers import wait_for
from test_outputs_hls import GOP, REPEATS, stream

from lofid.web.stream import FRAGMENT_S, WebStream, codecs_of, starts_with_keyframe
from lofid.web.watchers import END


def test_a_browser_that_joins_late_starts_at_a_keyframe_and_gets_every_fragment_after():
    info, packets = stream()
    web = WebStream()
    web.lossless = True                  # this test wants every packet, not the clock
    web.start(info)
    late = None
    half = len(packets) // 2
    for i, p in enumerate(packets):
        assert web.send(p)
        if i == half:
            wait_for(lambda: web.stats.written == web.stats.sent, timeout=30)
            late = web.join()
    wait_for(lambda: web.stats.written == web.stats.sent, timeout=30)
    web.close()
    chunks = []
    while (item := late.get(timeout=5)) is not END:
        chunks.append(item)
    data = b"".join(chunks)
    assert data[4:8] == b"ftyp"
    # Fragments of at most FRAGMENT_S: about 2 s / 0.5 s per GOP, not one per GOP.
    assert web.fragments >= REPEATS * 2 / FRAGMENT_S * 0.9

    with av.open(io.BytesIO(data), format="mp4") as c:
        video = [p for p in c.demux(video=0) if p.size]
        frames = sum(1 for p in video for _ in p.decode())
    assert video[0].is_keyframe
    # It joined within the GOP that was playing and then got everything to the end.
    first = int(video[0].pts * video[0].time_base * 30)
    assert first % GOP == 0 and first <= half
    assert frames == REPEATS * GOP - first
    assert codecs_of(info).startswith("avc1.") and codecs_of(info).endswith("mp4a.40.2")


def test_keyframe_fragments_are_told_from_the_others():
    info, packets = stream()
    web = WebStream()
    web.lossless = True
    fragments = []
    web._fragment = fragments.append           # every fragment as the muxer cuts it
    web.start(info)
    for p in packets:
        web.send(p)
    web.close()
    keys = [starts_with_keyframe(f) for f in fragments]
    # One keyframe a GOP; the fragment it begins is the first of each 2-s run.
    assert sum(keys) == REPEATS and keys[0]
    assert not starts_with_keyframe(b"\x00\x00\x00\x10moofgarbage!")
