"""One still per loop for the page's library grid: the loop's first frame as a small
JPEG, made once and kept (in memory, the most recently asked first to stay)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

WIDTH = 256                    # pixels: a grid cell on a phone or a desktop
KEEP = 1024                    # stills in memory (~10 KB each)


class Thumbnails:
    def __init__(self, library):
        self.library = library
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0              # decoded (not from the cache): for the tests

    def get(self, key: str) -> bytes:
        """The JPEG of loop `key`; KeyError when the library has no such loop."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = self._make(key)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > KEEP:
                self._cache.popitem(last=False)
        return data

    def _make(self, key: str) -> bytes:
        from PIL import Image
        standby = self.library.standby(key, 1)    # decodes the first frame alone
        image = Image.fromarray(standby.frames[0])
        height = max(1, round(image.height * WIDTH / image.width))
        image = image.resize((WIDTH, height), Image.BILINEAR)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
        self.made += 1
        return out.getvalue()
