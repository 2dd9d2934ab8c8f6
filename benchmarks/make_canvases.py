"""Canvas-like PNGs from MNIST test digits, the request bodies of the serving benchmark.

Each digit is drawn as the drawing page sends it: a 280x280 transparent canvas, black ink whose
alpha follows the digit's strokes (a soft edge at half intensity), enlarged 8x and off-centre.

    python benchmarks/make_canvases.py OUT_DIR [COUNT]
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import mnist_data  # noqa: E402


def canvas(digit: np.ndarray, scale: int = 8, origin=(20, 10), size: int = 280) -> Image.Image:
    big = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.BILINEAR)
    intensity = np.asarray(big, dtype=np.float32) / 255.0
    coverage = np.clip((intensity - 0.5) * scale + 0.5, 0.0, 1.0)
    alpha = np.zeros((size, size), dtype=np.uint8)
    region = alpha[origin[1] : origin[1] + 28 * scale, origin[0] : origin[0] + 28 * scale]
    region[...] = (coverage[: region.shape[0], : region.shape[1]] * 255).round().astype(np.uint8)
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    return Image.fromarray(rgba, mode="RGBA")


def main():
    out = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    out.mkdir(parents=True, exist_ok=True)
    images = mnist_data.read_idx(mnist_data.DATA_DIR / "t10k-images-idx3-ubyte.gz")
    labels = mnist_data.read_idx(mnist_data.DATA_DIR / "t10k-labels-idx1-ubyte.gz")
    for i in range(count):
        canvas(images[i]).save(out / f"{i:03d}.png", optimize=False)
    (out / "labels.txt").write_text("".join(f"{int(label)}\n" for label in labels[:count]))


if __name__ == "__main__":
    main()
