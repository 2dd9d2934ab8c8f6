"""Reference prediction server: FastAPI + uvicorn + PyTorch, serving our model's weights.

    MODEL_DIR=models/x python benchmarks/reference/serve_fastapi.py --port 8001

`POST /api/predict` takes PNG (or any Pillow-readable) bytes and answers like ml-ui:
`{"digit", "probabilities", "model_version"}`, 422 for an empty drawing. `/readyz` answers 200
once the model is loaded. The weights come from MODEL_DIR/model.safetensors (see
nets.from_ours); the normalisation from MODEL_DIR/model.json.

Preprocessing follows shared/src/preprocess.rs in its main steps: decode, ink from alpha (or
from the distance to the border colour on opaque pictures), stretch to full contrast, drop
noise, crop to the strokes, scale the long side to 20 px (bilinear), place the centre of mass
at the frame's centre. It leaves out ours' stroke-width correction for very thin or thick pens;
on the benchmark's canvases (MNIST strokes) that step changes nothing.
"""

import argparse
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image
from safetensors.torch import load_file

import nets

MIN_CONTRAST, NOISE_FLOOR, STROKE_LEVEL, BOX_SIDE, CENTRE = 0.15, 0.08, 0.5, 20, 14.0


def ink_map(image: Image.Image) -> np.ndarray:
    """Per-pixel ink in 0..1, stretched to full contrast; raises ValueError when there is none."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3]
    if alpha.max() - alpha.min() > 127:
        ink = alpha / 255.0
    else:
        border = np.concatenate([rgba[0, :, :3], rgba[-1, :, :3], rgba[:, 0, :3], rgba[:, -1, :3]])
        ink = np.abs(rgba[..., :3] - np.median(border, axis=0)).max(axis=2) / 255.0
    peak = ink.max()
    if peak < MIN_CONTRAST:
        raise ValueError("empty drawing")
    ink = ink / peak
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def frame(data: bytes) -> np.ndarray:
    """The 28x28 MNIST-like frame (0 background, 1 ink) of a picture."""
    ink = ink_map(Image.open(io.BytesIO(data)))
    rows, cols = np.nonzero(ink >= STROKE_LEVEL)
    if len(rows) == 0:
        raise ValueError("empty drawing")
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    scale = BOX_SIDE / max(h, w)
    size = (max(1, min(BOX_SIDE, round(w * scale))), max(1, min(BOX_SIDE, round(h * scale))))
    scaled = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.BILINEAR))
    scaled = np.clip(scaled, 0.0, 1.0)
    total = scaled.sum()
    ys, xs = np.indices(scaled.shape)
    cy, cx = (ys * scaled).sum() / total, (xs * scaled).sum() / total
    top, left = int(round(CENTRE - cy)), int(round(CENTRE - cx))
    out = np.zeros((28, 28), dtype=np.float32)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(28, top + scaled.shape[0]), min(28, left + scaled.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def create_app(model_dir: Path) -> FastAPI:
    card = json.loads((model_dir / "model.json").read_text())
    norm = card.get("input", {}).get("normalisation", {"mean": 0.1307, "std": 0.3081})
    mean, std = float(norm["mean"]), float(norm["std"])
    net = nets.from_ours(load_file(str(model_dir / "model.safetensors")))
    version = str(card.get("version", model_dir.name))
    app = FastAPI()

    @app.get("/readyz")
    def readyz():
        return {"ready": True}

    @app.post("/api/predict")
    async def predict(request: Request):
        body = await request.body()
        try:
            pixels = frame(body)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=422)
        x = torch.from_numpy((pixels - mean) / std).reshape(1, 1, 28, 28)
        with torch.inference_mode():
            probabilities = torch.softmax(net(x), dim=1)[0].tolist()
        digit = max(range(10), key=probabilities.__getitem__)
        return {"digit": digit, "probabilities": probabilities, "model_version": version}

    return app


def main():
    p = argparse.ArgumentParser(description="FastAPI reference prediction server")
    p.add_argument("--model", type=Path, default=Path(os.environ.get("MODEL_DIR", "model")))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
