"""Repeated pictures for a few bytes each: H.264 frames that show the previous one again.

A loop painted at 10 fps plays at 30: each picture is on screen for three output
frames, and a crossfade between two such loops changes every third frame too. x264
costs nearly as much for a repeated picture as for a new one (at 1080p about 6 ms a
frame in "ultrafast": it still analyses every macroblock before it decides to skip
it), so encoding a repetition again, as an overlay's new text needs once a minute,
cost about 1.3 CPU-seconds for 180 frames of which only 60 are new.

Here the encoder gets only the new pictures, each with its real timestamp (so its
rate control knows a picture stands for three frames), and every repeat is a frame
made here: a P frame whose every macroblock is skipped, which a decoder turns into
an exact copy of the frame before it (the skip's motion vector is zero when all the
neighbours are skipped too, and the slice turns the loop filter off). The encoder's
own frames get the frame_num of their real place (its picture timing SEI already
counts from the timestamps), so the result is one ordinary constant-rate stream that
any decoder plays: the same SPS/PPS, the same GOP, one frame per output frame, every
frame a reference as before.

What this module writes is the least of H.264: a slice header, CABAC-coded skip flags
(or CAVLC's one skip run) and a picture timing SEI. It reads the encoder's SPS and
PPS to fill them in, and refuses (Unsupported) a stream it does not know how to
extend, in which case the caller gives every frame to the encoder as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

# NAL unit types used here (H.264 Table 7-1).
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS = 1, 5, 6, 7, 8
SEI_PIC_TIMING = 1

_START = re.compile(b"\x00\x00\x01")


class Unsupported(Exception):
    """A stream whose headers use something this module does not write."""


# --------------------------------------------------------------------------- NAL units

def split_nals(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (header byte first, no start codes)."""
    starts = [m.end() for m in _START.finditer(data)]
    nals = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        # A four-byte start code's leading zero (and any trailing_zero_8bits) belongs
        # to the next start code, never to this unit: a NAL unit never ends in 0x00.
        nals.append(data[start:end].rstrip(b"\x00"))
    return [n for n in nals if n]


def join_nals(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def unescape(payload: bytes) -> bytes:
    """RBSP from a NAL unit's bytes: the emulation prevention bytes taken out."""
    return payload.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in payload \
        else payload


_NEEDS_ESCAPE = re.compile(b"\x00\x00(?=[\x00-\x03])")


def escape(rbsp: bytes) -> bytes:
    """A NAL unit's bytes from RBSP: 0x03 after every two zeros that precede a byte
    of 0..3 (non-overlapping matches restart the zero count after each insertion, as
    the standard's encoder does), and one more at the end of an RBSP that ends in
    cabac_zero_words (0x0000), the only way an RBSP can end in a zero."""
    out = _NEEDS_ESCAPE.sub(b"\x00\x00\x03", rbsp)
    return out + b"\x03" if out.endswith(b"\x00\x00") else out


# --------------------------------------------------------------------------- bits

class BitReader:
    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos                  # in bits

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3] if (self.pos >> 3) < len(self.data) else 0
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise Unsupported("an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


class BitWriter:
    def __init__(self):
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def aligned(self) -> bool:
        return len(self.bits) % 8 == 0

    def trailing(self) -> None:
        """rbsp_trailing_bits: a one, then zeros to the byte."""
        self.bits.append(1)
        while not self.aligned():
            self.bits.append(0)

    def bytes(self) -> bytes:
        assert self.aligned()
        return bytes(int("".join(map(str, self.bits[i:i + 8])), 2)
                     for i in range(0, len(self.bits), 8))


def replace_bits(data: bytes, pos: int, n: int, value: int) -> bytes:
    """`data` with the n bits at bit `pos` set to `value`."""
    out = bytearray(data)
    for i in range(n):
        bit = (value >> (n - 1 - i)) & 1
        at = pos + i
        mask = 1 << (7 - (at & 7))
        out[at >> 3] = (out[at >> 3] | mask) if bit else (out[at >> 3] & ~mask)
    return bytes(out)


# --------------------------------------------------------------------------- headers

@dataclass(frozen=True)
class Headers:
    """What a repeated frame and a renumbering need from the SPS and PPS."""
    log2_max_frame_num: int
    mbs: int                           # macroblocks in a frame
    pps_id: int
    cabac: bool
    pic_init_qp: int
    deblocking_control: bool
    # Picture timing SEI, when the SPS carries HRD parameters.
    hrd: bool
    cpb_delay_bits: int
    dpb_delay_bits: int
    clock: Fraction                    # clock ticks per second (0 without timing info)


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def _hrd(r: BitReader) -> tuple[int, int]:
    cpb_cnt = r.ue() + 1
    r.u(4), r.u(4)
    for _ in range(cpb_cnt):
        r.ue(), r.ue(), r.u(1)
    r.u(5)
    return r.u(5) + 1, r.u(5) + 1


def parse_headers(extradata: bytes) -> Headers:
    """The fields needed here, from Annex B extradata holding one SPS and one PPS."""
    nals = split_nals(extradata)
    sps = [n for n in nals if n[0] & 0x1F == NAL_SPS]
    pps = [n for n in nals if n[0] & 0x1F == NAL_PPS]
    if len(sps) != 1 or len(pps) != 1:
        raise Unsupported(f"extradata with {len(sps)} SPS and {len(pps)} PPS, not one each")
    r = BitReader(unescape(sps[0]), 8)
    profile = r.u(8)
    r.u(16)                                   # constraint flags, level
    r.ue()                                    # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if r.ue() != 1:
            raise Unsupported("a chroma format other than 4:2:0")
        r.ue(), r.ue(), r.u(1)                # bit depths, qpprime_y_zero_transform_bypass
        if r.u(1):
            for i in range(8):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    if poc_type != 2:
        # Type 2 derives the order from frame_num alone (what x264 writes without
        # B-frames): renumbering frame_num puts a frame in its place, nothing else.
        raise Unsupported(f"picture order count type {poc_type} (only type 2 is written)")
    refs = r.ue()                             # max_num_ref_frames
    if refs != 1:
        # A repeat is a reference frame: with more than one the encoder's frames would
        # find a repeat where the encoder had kept an older picture.
        raise Unsupported(f"{refs} reference frames (repeats need exactly one)")
    r.u(1)                                    # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    if not r.u(1):
        raise Unsupported("interlaced coding (frame_mbs_only_flag 0)")
    r.u(1)                                    # direct_8x8_inference_flag
    if r.u(1):
        r.ue(), r.ue(), r.ue(), r.ue()        # cropping
    hrd, cpb_bits, dpb_bits = False, 0, 0
    tick = scale = 0
    if r.u(1):                                # VUI
        if r.u(1) and r.u(8) == 255:
            r.u(32)
        if r.u(1):
            r.u(1)
        if r.u(1):
            r.u(4)
            if r.u(1):
                r.u(24)
        if r.u(1):
            r.ue(), r.ue()
        if r.u(1):
            tick, scale = r.u(32), r.u(32)
            r.u(1)
        nal_hrd, vcl_hrd = r.u(1), 0
        if nal_hrd:
            cpb_bits, dpb_bits = _hrd(r)
        vcl_hrd = r.u(1)
        if vcl_hrd:
            cpb_bits, dpb_bits = _hrd(r)
        if nal_hrd or vcl_hrd:
            hrd = True
            r.u(1)                            # low_delay_hrd_flag
        if r.u(1):
            raise Unsupported("picture timing with pic_struct")
    r = BitReader(unescape(pps[0]), 8)
    pps_id = r.ue()
    r.ue()                                    # seq_parameter_set_id
    cabac = bool(r.u(1))
    r.u(1)                                    # bottom_field_pic_order_in_frame_present
    if r.ue() != 0:
        raise Unsupported("slice groups")
    r.ue(), r.ue()                            # num_ref_idx defaults
    if r.u(1):
        raise Unsupported("weighted prediction")
    r.u(2)
    pic_init_qp = 26 + r.se()
    r.se(), r.se()
    deblocking_control = bool(r.u(1))
    r.u(1)                                    # constrained_intra_pred_flag
    if r.u(1):
        raise Unsupported("redundant pictures")
    return Headers(log2_max_frame_num=log2_max_frame_num, mbs=width_mbs * height_units,
                   pps_id=pps_id, cabac=cabac, pic_init_qp=pic_init_qp,
                   deblocking_control=deblocking_control,
                   hrd=hrd, cpb_delay_bits=cpb_bits, dpb_delay_bits=dpb_bits,
                   clock=Fraction(scale, tick) if tick else Fraction(0))


# --------------------------------------------------------------------------- CABAC

# H.264 Table 9-44: rangeTabLPS[pStateIdx][qCodIRangeIdx], and the state after an LPS.
_RANGE_LPS = (
    (128, 176, 208, 240), (128, 167, 197, 227), (128, 158, 187, 216), (123, 150, 178, 205),
    (116, 142, 169, 195), (111, 135, 160, 185), (105, 128, 152, 175), (100, 122, 144, 166),
    (95, 116, 137, 158), (90, 110, 130, 150), (85, 104, 123, 142), (81, 99, 117, 135),
    (77, 94, 111, 128), (73, 89, 105, 122), (69, 85, 100, 116), (66, 80, 95, 110),
    (62, 76, 90, 104), (59, 72, 86, 99), (56, 69, 81, 94), (53, 65, 77, 89),
    (51, 62, 73, 85), (48, 59, 69, 80), (46, 56, 66, 76), (43, 53, 63, 72),
    (41, 50, 59, 69), (39, 48, 56, 65), (37, 45, 54, 62), (35, 43, 51, 59),
    (33, 41, 48, 56), (32, 39, 46, 53), (30, 37, 43, 50), (29, 35, 41, 48),
    (27, 33, 39, 45), (26, 31, 37, 43), (24, 30, 35, 41), (23, 28, 33, 39),
    (22, 27, 32, 37), (21, 26, 30, 35), (20, 24, 29, 33), (19, 23, 27, 31),
    (18, 22, 26, 30), (17, 21, 25, 28), (16, 20, 23, 27), (15, 19, 22, 25),
    (14, 18, 21, 24), (14, 17, 20, 23), (13, 16, 19, 22), (12, 15, 18, 21),
    (12, 14, 17, 20), (11, 14, 16, 19), (11, 13, 15, 18), (10, 12, 15, 17),
    (10, 12, 14, 16), (9, 11, 13, 15), (9, 11, 12, 14), (8, 10, 12, 14),
    (8, 9, 11, 13), (7, 9, 11, 12), (7, 9, 10, 12), (7, 8, 10, 11),
    (6, 8, 9, 11), (6, 7, 9, 10), (6, 7, 8, 9), (2, 2, 2, 2),
)
_NEXT_AFTER_LPS = (
    0, 0, 1, 2, 2, 4, 4, 5, 6, 7, 8, 9, 9, 11, 11, 12,
    13, 13, 15, 15, 16, 16, 18, 18, 19, 19, 21, 21, 22, 22, 23, 24,
    24, 25, 26, 26, 27, 27, 28, 29, 29, 30, 30, 30, 31, 32, 32, 33,
    33, 33, 34, 34, 35, 35, 35, 36, 36, 36, 37, 37, 37, 38, 38, 63,
)
# Table 9-13, cabac_init_idc 0: (m, n) of ctxIdx 11, mb_skip_flag in a P slice when
# neither neighbour is a coded macroblock (always so when every macroblock is skipped).
_SKIP_FLAG_MN = (23, 33)


class _Cabac:
    """The standard's arithmetic encoder (9.3.4), enough for decisions and the end."""

    def __init__(self, out: BitWriter):
        self.out = out
        self.low, self.range = 0, 510
        self.first, self.outstanding = True, 0

    def _put(self, bit: int) -> None:
        if self.first:
            self.first = False
        else:
            self.out.u(1, bit)
        while self.outstanding:
            self.out.u(1, 1 - bit)
            self.outstanding -= 1

    def _renorm(self) -> None:
        while self.range < 256:
            if self.low < 256:
                self._put(0)
            elif self.low >= 512:
                self.low -= 512
                self._put(1)
            else:
                self.low -= 256
                self.outstanding += 1
            self.range <<= 1
            self.low <<= 1

    def decision(self, ctx: list[int], bin_: int) -> None:
        """Encode one bin with context ctx = [pStateIdx, valMPS], which it updates."""
        state, mps = ctx
        lps = _RANGE_LPS[state][(self.range >> 6) & 3]
        self.range -= lps
        if bin_ != mps:
            self.low += self.range
            self.range = lps
            if state == 0:
                mps = 1 - mps
            state = _NEXT_AFTER_LPS[state]
        elif state < 62:
            state += 1
        ctx[0], ctx[1] = state, mps
        self._renorm()

    def terminate(self, bin_: int) -> None:
        """end_of_slice_flag; a 1 flushes, and its last bit is the rbsp_stop_one_bit."""
        self.range -= 2
        if not bin_:
            self._renorm()
            return
        self.low += self.range
        self.range = 2
        self._renorm()
        self._put((self.low >> 9) & 1)
        self.out.u(2, ((self.low >> 7) & 3) | 1)


def _context(m: int, n: int, qp: int) -> list[int]:
    pre = max(1, min(126, ((m * max(0, min(51, qp))) >> 4) + n))
    return [63 - pre, 0] if pre <= 63 else [pre - 64, 1]


# --------------------------------------------------------------------------- frames

@lru_cache(maxsize=8)
def repeats_for(extradata: bytes, fps: Fraction) -> "Repeats | None":
    """The Repeats for a stream's headers, shared by every segment encoder with the
    same settings (their headers are byte-identical); None where it cannot extend them."""
    try:
        return Repeats(extradata, fps)
    except Unsupported:
        return None


class Repeats:
    """Frames around the encoder's own in one closed-GOP segment at `fps`: `repeat`
    makes the frame that shows the previous one again, `renumber` puts an encoder
    frame in its place among them. Places count from the segment's last keyframe
    (`since_key`); keyframes themselves always come from the encoder."""

    def __init__(self, extradata: bytes, fps: Fraction):
        h = parse_headers(extradata)
        self.headers = h
        if h.hrd:
            ticks = h.clock / Fraction(fps)
            if h.clock <= 0 or ticks.denominator != 1:
                raise Unsupported(f"HRD clock of {h.clock} ticks/s at {fps} fps")
            self._ticks = int(ticks)
        self._max_frame_num = 1 << h.log2_max_frame_num
        self._units: dict[int, bytes] = {}     # a repeat's access unit by its place

    # The encoder's frames --------------------------------------------------------------

    def renumber(self, data: bytes, since_key: int) -> bytes:
        """An encoder's P frame (Annex B) with frame_num for its real place (the order of
        pictures follows from it, picture order count type 2).

        The encoder numbered its frames without the repeats; the picture timing SEI
        needs nothing, since the encoder derives it from the frames' timestamps. A
        frame already in its place (no repeat before it in its GOP) comes back as is."""
        bits = self.headers.log2_max_frame_num
        frame_num = since_key % self._max_frame_num
        nals = split_nals(data)
        changed = False
        for i, nal in enumerate(nals):
            if nal[0] & 0x1F != NAL_SLICE:
                continue
            # The header's first fields fit in its first bytes: read them from those.
            r = BitReader(unescape(nal[:32]), 8)
            r.ue(), r.ue(), r.ue()            # first_mb_in_slice, slice_type, pps id
            if r.u(bits) == frame_num:
                continue
            nals[i] = escape(replace_bits(unescape(nal), r.pos - bits, bits, frame_num))
            changed = True
        return join_nals(nals) if changed else data

    # Repeats ---------------------------------------------------------------------------

    def repeat(self, since_key: int) -> bytes:
        """The access unit (Annex B) that shows the frame before it again, `since_key`
        frames after the segment's last keyframe (1 or more)."""
        if since_key < 1:
            raise ValueError(f"a repeat cannot be a keyframe (place {since_key})")
        unit = self._units.get(since_key)
        if unit is None:
            nals = [self._timing(since_key)] if self.headers.hrd else []
            unit = self._units[since_key] = join_nals(
                nals + [self._skip_slice(since_key % self._max_frame_num)])
        return unit

    def _timing(self, since_key: int) -> bytes:
        """A picture timing SEI: removed from the buffer one frame after the frame
        before, shown at once (no reordering: dpb_output_delay 0)."""
        h = self.headers
        w = BitWriter()
        w.u(h.cpb_delay_bits, (self._ticks * since_key) % (1 << h.cpb_delay_bits))
        w.u(h.dpb_delay_bits, 0)
        if not w.aligned():
            w.u(1, 1)
            while not w.aligned():
                w.u(1, 0)
        payload = w.bytes()
        return escape(bytes([NAL_SEI, SEI_PIC_TIMING, len(payload)]) + payload + b"\x80")

    def _skip_slice(self, frame_num: int) -> bytes:
        h = self.headers
        w = BitWriter()
        w.u(8, (2 << 5) | NAL_SLICE)           # a reference frame, like the encoder's P frames
        w.ue(0)                                # first_mb_in_slice
        w.ue(5)                                # slice_type: P, as every slice of the frame
        w.ue(h.pps_id)
        w.u(h.log2_max_frame_num, frame_num)
        w.u(1, 1)                              # num_ref_idx_active_override_flag:
        w.ue(0)                                # one reference, the frame before
        w.u(1, 0)                              # ref_pic_list_modification_flag_l0
        w.u(1, 0)                              # adaptive_ref_pic_marking_mode_flag
        if h.cabac:
            w.ue(0)                            # cabac_init_idc
        w.se(0)                                # slice_qp_delta
        if h.deblocking_control:
            w.ue(1)                            # disable_deblocking_filter_idc: off
        if h.cabac:
            while not w.aligned():
                w.u(1, 1)                      # cabac_alignment_one_bit
            return escape(w.bytes() + _all_skipped_cabac(h.mbs, h.pic_init_qp))
        w.ue(h.mbs)                            # mb_skip_run: the whole frame
        w.trailing()
        return escape(w.bytes())


@lru_cache(maxsize=16)
def _all_skipped_cabac(mbs: int, qp: int) -> bytes:
    """The CABAC slice data of `mbs` skipped macroblocks, from a byte boundary (the
    same whatever the slice header before it, so made once per frame size)."""
    w = BitWriter()
    cabac = _Cabac(w)
    skip = _context(*_SKIP_FLAG_MN, qp)
    for mb in range(mbs):
        cabac.decision(skip, 1)                # mb_skip_flag
        cabac.terminate(int(mb == mbs - 1))    # end_of_slice_flag
    while not w.aligned():
        w.u(1, 0)
    return w.bytes()
