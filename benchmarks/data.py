"""The benchmark data set: realistic JPEG photos made from scikit-image's real photos.

Each file is a random crop (40-100% of each side), optionally mirrored, of one of the
colour photos that ship with scikit-image, resized to about 500x375 (landscape or
portrait) and saved as JPEG quality 90, as a phone or web photo would be. The set is
deterministic for a given seed and cached: a second run with the same N reuses it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

#: Colour photos in scikit-image (no synthetic test patterns).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
)
#: Split for the int8 check: calibrate on some photos, measure agreement on the others.
CALIBRATION_PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg")
HELD_OUT_PHOTOS = tuple(p for p in PHOTOS if p not in CALIBRATION_PHOTOS)


def _skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _sources(names: tuple[str, ...]) -> list[object]:
    from PIL import Image

    return [Image.open(_skimage_dir() / n).convert("RGB") for n in names]


def make_photo(src: object, rng: random.Random) -> object:
    """One random crop/flip/resize of ``src`` at about 500x375."""
    from PIL import Image

    w, h = src.size  # type: ignore[attr-defined]
    cw, ch = int(w * rng.uniform(0.4, 1.0)), int(h * rng.uniform(0.4, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = src.crop((x, y, x + cw, y + ch))  # type: ignore[attr-defined]
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    size = (500, 375) if rng.random() < 0.75 else (375, 500)
    jitter = rng.uniform(0.9, 1.1)
    return img.resize((int(size[0] * jitter), int(size[1] * jitter)), Image.Resampling.BICUBIC)


def generate(
    out: Path, n: int, seed: int = 0, photos: tuple[str, ...] = PHOTOS, quality: int = 90
) -> Path:
    """``n`` JPEGs under ``out/n{n}-s{seed}`` (reused when already complete)."""
    target = out / f"n{n}-s{seed}-{len(photos)}"
    done = target / ".complete"
    if done.is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sources = _sources(photos)
    for i in range(n):
        img = make_photo(sources[i % len(sources)], rng)
        img.save(target / f"img{i:06d}.jpg", "JPEG", quality=quality)  # type: ignore[attr-defined]
    done.write_text(str(n))
    return target


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def held_out_arrays(n: int, seed: int = 1) -> list[np.ndarray]:
    """Decoded held-out photos (never used for calibration) for the int8 agreement check."""
    rng = random.Random(seed)
    sources = _sources(HELD_OUT_PHOTOS)
    return [np.asarray(make_photo(sources[i % len(sources)], rng)) for i in range(n)]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("bench-data"))
    a = p.parse_args()
    print(generate(a.out, a.n))
