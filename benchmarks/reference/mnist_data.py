"""MNIST from the shipped IDX files (data/mnist/*.gz), as float tensors normalised like ours.

No torchvision and no download: the same bytes that `trainer` reads, checked by their shape.
"""

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

# shared::card::Normalisation::MNIST, the constants written into every model card.
MEAN, STD = 0.1307, 0.3081

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"


def read_idx(path: Path) -> np.ndarray:
    """One IDX array (gzip or plain) as a numpy array of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, data_dir: Path = DATA_DIR):
    """(images (N, 1, 28, 28) float32 normalised, labels (N,) int64) of "train" or "t10k"."""
    images = read_idx(data_dir / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / f"{split}-labels-idx1-ubyte.gz")
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD, torch.from_numpy(labels.astype(np.int64))
