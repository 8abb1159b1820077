#!/usr/bin/env python3
"""Checks that a PNG screenshot rendered something: a valid PNG of the expected width whose
pixels are not all one colour (at least 1% of them differ from the most common one).

Usage: check_png.py FILE.png WIDTH
"""
import collections
import struct
import sys
import zlib


def rows(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace != 0:
        raise ValueError(f"unsupported PNG layout depth={depth} color={color}")
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    out = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out.append(bytes(line))
        prev = line
    return width, height, bpp, out


def main():
    width, height, bpp, lines = rows(sys.argv[1])
    if width != int(sys.argv[2]):
        print(f"FAIL: width {width}, expected {sys.argv[2]}")
        return 1
    counts = collections.Counter()
    for line in lines[::4]:  # every 4th row is plenty
        for i in range(0, len(line), bpp * 4):
            counts[line[i:i + 3]] += 1
    total = sum(counts.values())
    common, n = counts.most_common(1)[0]
    varied = 1 - n / total
    print(f"check_png: {width}x{height}, {len(counts)} colours, {varied:.1%} of pixels "
          f"differ from the background")
    if varied < 0.01 or len(counts) < 8:
        print("FAIL: the screenshot is (nearly) blank")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
