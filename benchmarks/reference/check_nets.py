"""Checks nets.from_ours against a direct numpy transcription of shared's forward pass.

shared computes each convolution as NHWC patches ordered (row, column, channel) times the
(out, kh * kw * in) weights, pools before the ReLU and flattens (h, w, c) into fc1. If the axis
permutations in from_ours were wrong, the logits would differ far beyond float rounding.

    python benchmarks/reference/check_nets.py MODEL_DIR
"""

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

import mnist_data
import nets


def patches(x: np.ndarray, kernel: int, padding: int) -> np.ndarray:
    """(n, h, w, c) -> (n, oh, ow, kernel * kernel * c), ordered (row, column, channel)."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n, h, w, c = x.shape
    oh, ow = h - kernel + 1, w - kernel + 1
    rows = [x[:, i : i + oh, j : j + ow, :] for i in range(kernel) for j in range(kernel)]
    return np.stack(rows, axis=3).reshape(n, oh, ow, kernel * kernel * c)


def conv_pool_relu(x, weight, bias, padding):
    y = patches(x, 5, padding) @ weight.T + bias
    n, h, w, c = y.shape
    y = y[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    return np.maximum(y, 0.0)


def ours_logits(t: dict, frames: np.ndarray) -> np.ndarray:
    x = conv_pool_relu(frames, t["conv1.weight"], t["conv1.bias"], 2)
    x = conv_pool_relu(x, t["conv2.weight"], t["conv2.bias"], 0).reshape(len(frames), -1)
    x = np.maximum(x @ t["fc1.weight"].T + t["fc1.bias"], 0.0)
    return x @ t["fc2.weight"].T + t["fc2.bias"]


def main():
    tensors = load_file(str(Path(sys.argv[1]) / "model.safetensors"))
    images, _ = mnist_data.load("t10k")
    batch = images[:64]
    expected = ours_logits(tensors, batch.permute(0, 2, 3, 1).numpy().astype(np.float64))
    net = nets.from_ours({k: torch.from_numpy(v) for k, v in tensors.items()})
    with torch.inference_mode():
        got = net(batch).double().numpy()
    worst = float(np.abs(got - expected).max())
    tolerance = 1e-3 * max(1.0, float(np.abs(expected).max()))
    print(f"largest logit difference {worst:.2e} (tolerance {tolerance:.2e})")
    sys.exit(0 if worst <= tolerance else 1)


if __name__ == "__main__":
    main()
