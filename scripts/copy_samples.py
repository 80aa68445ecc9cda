"""Copy the real photos that ship in scikit-image's ``data/`` folder into a folder.

Used by ``make install`` to put sample photos in place for ``make demo``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Colour and grayscale photographs (not synthetic test patterns).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "horse.png",
    "camera.png",
    "retina.jpg",
)


def main(dest: str) -> int:
    import skimage

    src = Path(skimage.__file__).parent / "data"
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)
    print(f"sample photos in {out}/: {len(list(out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "samples"))
