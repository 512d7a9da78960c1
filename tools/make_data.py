"""Make the data shipped in pyconv/data/: a synthetic test image and a 3-D volume.

    python tools/make_data.py            # writes pyconv/data/image.npz, volume.npz
    python tools/make_data.py --check    # verifies the shipped files match this script

Both are drawn from formulas and a seeded generator, so they are reproducible and
free of any licence question (no download).  The image is built to exercise each
kind of convolution in the tour: flat regions and sharp straight edges (edge
filters), a smooth gradient (blurs barely change it), fine stripes and a
checkerboard (high frequencies that strides alias and blurs remove), round
shapes (edges in every direction) and light noise.  The volume holds a few solid
shapes, for 3-D convolution.

The files are written byte-for-byte reproducibly (fixed zip timestamps).
"""
import argparse
import io
import os
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "pyconv", "data")
SEED = 20261128


def make_image(h=128, w=128, seed=SEED):
    """RGB test image, channels first: (3, h, w) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / (w - 1), y / (h - 1)
    # background: a diagonal colour gradient
    img = np.stack([0.15 + 0.55 * u, 0.2 + 0.5 * v, 0.65 - 0.45 * u * v])
    # a disc (red) and a ring (yellow): edges in every direction
    r1 = np.hypot(x - 0.28 * w, y - 0.3 * h)
    img[:, r1 < 0.17 * w] = np.array([0.9, 0.15, 0.1])[:, None]
    ring = np.abs(np.hypot(x - 0.72 * w, y - 0.72 * h) - 0.15 * w) < 0.035 * w
    img[:, ring] = np.array([0.95, 0.85, 0.1])[:, None]
    # a dark rectangle with sharp axis-aligned edges
    rect = (x >= 0.58 * w) & (x < 0.92 * w) & (y >= 0.1 * h) & (y < 0.34 * h)
    img[:, rect] = np.array([0.08, 0.1, 0.12])[:, None]
    # vertical stripes of period 4: the finest texture a stride 2 aliases
    stripes = (x >= 0.1 * w) & (x < 0.45 * w) & (y >= 0.6 * h) & (y < 0.9 * h)
    img[:, stripes] = np.where((x[stripes] // 2) % 2 == 0, 0.95, 0.05)[None, :]
    # a checkerboard of 3-pixel cells inside the rectangle's left part
    cb = (x >= 0.62 * w) & (x < 0.78 * w) & (y >= 0.14 * h) & (y < 0.3 * h)
    img[:, cb] = np.where(((x[cb] // 3) + (y[cb] // 3)) % 2 == 0, 0.9, 0.3)[None, :]
    # a diagonal line and a sinusoidal band (oriented texture)
    line = np.abs((x - y) - 0.05 * w) < 1.0
    img[:, line] = 1.0
    band = (y >= 0.42 * h) & (y < 0.52 * h)
    img[:, band] = (0.5 + 0.4 * np.sin(2 * np.pi * (x[band] + 0.5 * y[band]) / 9.0))[None, :]
    img += rng.normal(0.0, 0.015, img.shape)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_volume(n=32, seed=SEED):
    """3-D volume of solid shapes: (n, n, n) uint8, axes (depth, height, width)."""
    rng = np.random.default_rng(seed + 1)
    z, y, x = np.mgrid[0:n, 0:n, 0:n].astype(np.float64) / (n - 1)
    vol = 0.1 + 0.1 * z                                            # gentle depth gradient
    vol = np.where(np.hypot(np.hypot(x - 0.3, y - 0.3), z - 0.35) < 0.2, 0.9, vol)          # ball
    cube = (np.abs(x - 0.7) < 0.15) & (np.abs(y - 0.3) < 0.15) & (np.abs(z - 0.65) < 0.15)
    vol = np.where(cube, 0.6, vol)
    # a torus lying in the (x, y) plane
    rho = np.hypot(x - 0.55, y - 0.7)
    torus = np.hypot(rho - 0.2, z - 0.5) < 0.07
    vol = np.where(torus, 0.75, vol)
    # a thin tube winding along the depth axis, like a vessel in a CT scan
    cx = 0.2 + 0.08 * np.sin(2 * np.pi * z)
    vol = np.where(np.hypot(x - cx, y - 0.8) < 0.05, 1.0, vol)
    vol = vol + rng.normal(0.0, 0.01, vol.shape)
    return np.clip(np.rint(vol * 255), 0, 255).astype(np.uint8)


def _npz_bytes(**arrays):
    """An .npz archive (deflated) with fixed timestamps, so the bytes are reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def files():
    return {
        "image.npz": _npz_bytes(image=make_image()),
        "volume.npz": _npz_bytes(volume=make_volume()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the shipped files instead of writing them")
    args = ap.parse_args(argv)
    bad = 0
    for name, data in files().items():
        path = os.path.normpath(os.path.join(DATA, name))
        if args.check:
            with open(path, "rb") as f:
                same = f.read() == data
            print(f"{path}: {'ok' if same else 'DIFFERS'}")
            bad += not same
        else:
            os.makedirs(DATA, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            print(f"wrote {path} ({len(data)} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
