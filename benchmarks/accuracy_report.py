"""How far the NPU is from float32: top-1 agreement, feature cosine and per-layer SQNR, per network and precision.

    python benchmarks/accuracy_report.py [--inputs 200] [--networks ...] [--precisions bfp16 bfp12]
                                         [--sqnr-images 4] [--json OUT] [--plot OUT.png]

Inputs are deterministic variations (crops of 45-100% of the shorter side, horizontal flips, resizes) of the
colour photos scikit-image ships, preprocessed the way each pipeline does. The float reference is the catalog
Keras model; the NPU side is the compiled program on the bit-exact emulator.
- EfficientNet-Lite0: top-1 of the real ImageNet classifier on float vs NPU features.
- ResNet-50: the catalog has seeded (random) weights and the pipeline a seeded classifier (pipelines/resnet50),
  so its top-1 agreement measures how stable the argmax is under quantization, not ImageNet accuracy.
- Per-layer SQNR = 10 log10(sum f^2 / sum (f - q)^2) between each instruction's output and the float output of
  the last Keras layer it computes: the error accumulated up to that depth.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "ihc.png")
VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TOP1_GOAL = 0.98  # at the default precision on EfficientNet-Lite0

console = Console(width=None if sys.stdout.isatty() else 140)


# ---- inputs
def load_photos() -> list[np.ndarray]:
    import skimage
    from PIL import Image

    root = Path(skimage.__file__).parent / "data"
    return [np.asarray(Image.open(root / name).convert("RGB")) for name in PHOTOS]


def variations(photos: list[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` uint8 224x224 RGB crops: random square crop of 45-100% of the shorter side, random flip."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w, _ = photo.shape
        side = int(min(h, w) * rng.uniform(0.45, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[y:y + side, x:x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((224, 224), Image.Resampling.BILINEAR)))
    return out


def preprocess(network: str, rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32)
    if network == "resnet50":
        return (x[..., ::-1] - VGG_MEANS_BGR).astype(np.float32)
    return ((x - np.float32(127.0)) / np.float32(128.0)).astype(np.float32)


def classifier(network: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(kernel, bias, what it is) applied to the flattened features."""
    if network == "efficientnet-lite0":
        from brainwave.models.efficientnet_lite0 import classifier_weights

        return (*classifier_weights(), "ImageNet classifier (real weights)")
    sys.path.insert(0, str(REPO / "pipelines" / "resnet50"))
    import build as resnet50_pipeline

    return (*resnet50_pipeline.classifier_weights(None), "the pipeline's seeded classifier (random weights)")


# ---- metrics
@dataclass
class Agreement:
    top1: float
    cosine_mean: float
    cosine_min: float
    n: int


def agreement(float_features: np.ndarray, npu_features: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> Agreement:
    f = float_features.reshape(len(float_features), -1).astype(np.float64)
    q = npu_features.reshape(len(npu_features), -1).astype(np.float64)
    top1 = np.mean(np.argmax(f @ kernel + bias, axis=1) == np.argmax(q @ kernel + bias, axis=1))
    cosine = np.sum(f * q, axis=1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(q, axis=1))
    return Agreement(float(top1), float(cosine.mean()), float(cosine.min()), len(f))


def sqnr_db(reference: np.ndarray, quantized: np.ndarray) -> float:
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference.astype(np.float64) - quantized)))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def per_layer_sqnr(model, program, images: np.ndarray) -> list[dict]:
    """Mean SQNR over `images` for every instruction, against the float output of its last Keras layer."""
    import keras

    from brainwave.npu.emulator import Emulator

    last = [insn.name.split("+")[-1] for insn in program.instructions]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in last])
    emulator = Emulator(program)
    totals = np.zeros(len(last))
    for image in images:
        floats = probe([image[None]], training=False)
        for i, (_, out) in enumerate(emulator.trace(image[None])):
            totals[i] += sqnr_db(np.asarray(floats[i]).reshape(-1), out.reshape(-1))
    return [{"index": i, "instruction": insn.name, "op": insn.op.name, "sqnr_db": totals[i] / len(images)}
            for i, insn in enumerate(program.instructions)]


# ---- the report
def evaluate(network: str, precisions: list[str], rgb_inputs: list[np.ndarray], sqnr_images: int) -> dict:
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras
    from brainwave.npu.emulator import Emulator

    model = build_featurizer(resolve_featurizer(network))
    x = np.stack([preprocess(network, rgb) for rgb in rgb_inputs])
    float_features = np.concatenate([np.asarray(model(x[i:i + 16], training=False)) for i in range(0, len(x), 16)])
    kernel, bias, classifier_note = classifier(network)
    result = {"network": network, "classifier": classifier_note, "inputs": len(x), "precisions": {}}
    for precision in precisions:
        program = compile_keras(model, precision=precision)
        emulator = Emulator(program)
        npu = np.stack([emulator.run(image[None])[0]
                        for image in tqdm(x, desc=f"{network} {precision}", unit="img", leave=False)])
        a = agreement(float_features, npu, kernel, bias)
        layers = per_layer_sqnr(model, program, x[:sqnr_images])
        finite = [layer["sqnr_db"] for layer in layers if np.isfinite(layer["sqnr_db"])]
        result["precisions"][precision] = {
            "top1_agreement": a.top1, "cosine_mean": a.cosine_mean, "cosine_min": a.cosine_min,
            "sqnr_min_db": min(finite), "sqnr_median_db": float(np.median(finite)),
            "sqnr_last_db": layers[-1]["sqnr_db"], "layers": layers,
        }
    return result


def print_report(results: list[dict]) -> None:
    table = Table(title="NPU vs float32 (emulator, bit-exact with the HLS kernel)")
    for column in ("network", "precision", "inputs", "top-1 agreement", "cosine mean", "cosine min",
                   "SQNR median dB", "SQNR min dB", "SQNR output dB"):
        table.add_column(column, justify="left" if column in ("network", "precision") else "right")
    for r in results:
        for precision, p in r["precisions"].items():
            table.add_row(r["network"], precision, str(r["inputs"]), f"{100 * p['top1_agreement']:.1f}%",
                          f"{p['cosine_mean']:.5f}", f"{p['cosine_min']:.5f}", f"{p['sqnr_median_db']:.1f}",
                          f"{p['sqnr_min_db']:.1f}", f"{p['sqnr_last_db']:.1f}")
    console.print(table)
    for r in results:
        console.print(f"{r['network']}: top-1 through {r['classifier']}")
        for precision, p in r["precisions"].items():
            worst = sorted(p["layers"], key=lambda layer: layer["sqnr_db"])[:3]
            console.print(f"  {precision} lowest SQNR: " + ", ".join(
                f"#{w['index']} {w['instruction'].split('+')[0]} {w['sqnr_db']:.1f} dB" for w in worst))
        if r["network"] == "efficientnet-lite0" and "bfp16" in r["precisions"]:
            top1 = r["precisions"]["bfp16"]["top1_agreement"]
            verdict = "[green]meets" if top1 >= TOP1_GOAL else "[red]MISSES"
            console.print(f"  {verdict}[/] the goal of >= {100 * TOP1_GOAL:.0f}% top-1 agreement at bfp16 "
                          f"({100 * top1:.1f}%)")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4.5), squeeze=False)
    for ax, r in zip(axes[0], results):
        for precision, p in r["precisions"].items():
            ax.plot([layer["index"] for layer in p["layers"]], [layer["sqnr_db"] for layer in p["layers"]],
                    marker=".", label=precision)
        ax.set_title(f"{r['network']}: per-instruction SQNR vs float32")
        ax.set_xlabel("instruction (network depth)")
        ax.set_ylabel("SQNR (dB, accumulated)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200, help="photo variations per network (default 200)")
    parser.add_argument("--networks", nargs="+", default=["efficientnet-lite0", "resnet50"])
    parser.add_argument("--precisions", nargs="+", default=["bfp16", "bfp12"])
    parser.add_argument("--sqnr-images", type=int, default=4, help="images averaged for per-layer SQNR")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the per-layer SQNR plot here (PNG)")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.sqnr_images < 1:
        parser.error("--inputs and --sqnr-images must be at least 1")
    rgb_inputs = variations(load_photos(), args.inputs)
    results = [evaluate(network, args.precisions, rgb_inputs, min(args.sqnr_images, args.inputs))
               for network in args.networks]
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
        console.print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        console.print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
