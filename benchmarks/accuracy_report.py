"""How far the NPU is from float32: top-1 agreement, feature cosine and per-layer SQNR, per network and precision.

    python benchmarks/accuracy_report.py [--inputs 200] [--networks efficientnet-lite0 resnet50]
                                         [--precisions bfp16 bfp12] [--sqnr-images 4]
                                         [--json OUT.json] [--plot OUT.png]

Inputs are seeded, deterministic variations (square-ish crops of 45-100% of the shorter side, horizontal flips,
resizes to 224x224) of the colour photos scikit-image ships, preprocessed the way each pipeline does. The float
reference is the catalog Keras model; the NPU side is the compiled program on the native executor
(brainwave.npu.native, byte for byte the HLS kernel's output).
- EfficientNet-Lite0: top-1 of the real ImageNet classifier on float vs NPU features.
- ResNet-50: the catalog has seeded (random) weights and its pipeline a seeded random 2048 -> 1000 classifier
  (pipelines/resnet50/build.py), so its top-1 agreement measures how stable the argmax is under quantization,
  not ImageNet accuracy.
- Per-layer SQNR = 10 log10(sum f^2 / sum (f - q)^2), pooled over a few images, between each instruction's
  output q and the float output f of the last Keras layer it computes. The NPU feeds its own (quantized) results
  forward, so this is the error accumulated up to that depth, not the error one layer adds.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from brainwave.npu.numerics import DEFAULT_PRECISION as DEFAULT_NPU_PRECISION, Precision

REPO = Path(__file__).resolve().parents[1]
NETWORKS = ("efficientnet-lite0", "resnet50")
PRECISIONS = tuple(Precision.labels())
DEFAULT_PRECISION = DEFAULT_NPU_PRECISION.label  # compile_keras's default
GOAL = {"network": "efficientnet-lite0", "precision": DEFAULT_PRECISION, "top1_threshold": 0.98}
# Colour photos in the scikit-image wheel (skimage.data function names); no downloads.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina",
          "immunohistochemistry")
SIZE = 224
SEED = 0
FLOAT_BATCH = 16  # Keras is far faster per image on a batch; 16 keeps peak memory modest
VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
SQNR_NOTE = ("per-layer SQNR is accumulated: the NPU feeds its own quantized results forward, so each value is "
             "the error at that depth, not the error that layer adds")

console = Console(width=None if sys.stdout.isatty() else 140)


# ---- inputs
def load_photos() -> list[np.ndarray]:
    """The photos as uint8 RGB arrays (stereo_motorcycle returns (left, right, disparity): take left)."""
    import skimage.data

    photos = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        photos.append(np.asarray(image[0] if isinstance(image, tuple) else image, dtype=np.uint8))
    return photos


def variations(photos: list[np.ndarray], count: int, seed: int = SEED) -> list[np.ndarray]:
    """`count` uint8 (224, 224, 3) RGB inputs, cycling through the photos so every one is used evenly.

    Each is a crop whose shorter side is 45-100% of the photo's (a scale change once resized), aspect ratio
    within 4:5..5:4, at a random position, flipped left-right half the time, resized bilinearly to 224x224.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w, _ = photo.shape
        side = min(h, w) * rng.uniform(0.45, 1.0)
        aspect = rng.uniform(0.8, 1.25)
        ch, cw = min(h, int(side * np.sqrt(aspect))), min(w, int(side / np.sqrt(aspect)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(crop)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        out.append(np.asarray(resized))
    return out


def preprocess(network: str, rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (224, 224, 3) -> the float32 tensor the network's pipeline feeds its featurizer."""
    x = rgb.astype(np.float32)
    if network == "resnet50":
        return x[..., ::-1] - VGG_MEANS_BGR  # the Brainwave ResNet-50 input stage: BGR minus VGG means
    return (x - np.float32(127.0)) / np.float32(128.0)  # efficientnet_lite.preprocess_image's scaling


def photo_input(network: str) -> np.ndarray:
    """scikit-image's chelsea.png resized to 224x224 (bilinear), preprocessed for `network`: (1, 224, 224, 3)
    float32. benchmarks/featurizer.py times the featurizers on it, and the executor tests (tests/support) run
    the whole networks on it."""
    import skimage.data
    from PIL import Image

    rgb = Image.fromarray(skimage.data.chelsea()).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return preprocess(network, np.asarray(rgb))[None]


# ---- classifiers
@dataclass
class Classifier:
    kernel: np.ndarray  # (features, 1000)
    bias: np.ndarray  # (1000,)
    description: str
    imagenet: bool  # False: random weights, so top-1 agreement is argmax stability only


def classifier(network: str) -> Classifier:
    if network == "efficientnet-lite0":
        from brainwave.models.efficientnet_lite import LITE0

        return Classifier(*LITE0.classifier_weights(), "the real ImageNet classifier (features @ kernel + bias)", True)
    # The pipelines are scripts, not a package: loaded by path, under a name of its own.
    path = REPO / "pipelines" / "resnet50" / "build.py"
    spec = importlib.util.spec_from_file_location("resnet50_pipeline_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kernel, bias = module.classifier_weights(None)
    return Classifier(kernel, bias, "a SEEDED RANDOM 2048->1000 linear classifier (the resnet50 pipeline's; "
                      "the featurizer weights are random too): measures argmax stability, not ImageNet accuracy",
                      False)


# ---- metrics
@dataclass
class Agreement:
    top1: float  # the headline number: same argmax as float
    top5: float  # the float argmax is among the NPU's top 5
    top1_confident: float  # top-1 agreement where float softmax p(top-1) >= CONFIDENT; NaN if there are none
    n_confident: int
    cosine_mean: float
    cosine_min: float
    n: int


CONFIDENT = 0.5  # a near-tie argmax (out-of-distribution photo) flips on tiny noise; this separates those out


def agreement(float_features: np.ndarray, npu_features: np.ndarray, head: Classifier) -> Agreement:
    """`head`'s top-1 on float vs NPU features (one row per input) and their cosine similarity, in float64."""
    f = float_features.reshape(len(float_features), -1).astype(np.float64)
    q = npu_features.reshape(len(npu_features), -1).astype(np.float64)
    float_logits, npu_logits = f @ head.kernel + head.bias, q @ head.kernel + head.bias
    label = np.argmax(float_logits, axis=1)
    same = label == np.argmax(npu_logits, axis=1)
    top5 = np.any(np.argsort(npu_logits, axis=1)[:, -5:] == label[:, None], axis=1)
    shifted = np.exp(float_logits - float_logits.max(axis=1, keepdims=True))
    confident = shifted.max(axis=1) / shifted.sum(axis=1) >= CONFIDENT
    cosine = np.sum(f * q, axis=1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(q, axis=1))
    return Agreement(float(same.mean()), float(top5.mean()),
                     float(same[confident].mean()) if confident.any() else float("nan"), int(confident.sum()),
                     float(cosine.mean()), float(cosine.min()), len(f))


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise) from energies; +inf when the NPU matched exactly."""
    return float("inf") if noise == 0 else float(10 * np.log10(signal / noise))


def energies(reference: np.ndarray, quantized: np.ndarray) -> tuple[float, float]:
    """(sum f^2, sum (f - q)^2) in float64, so energies from several images can be pooled before the ratio."""
    f = reference.reshape(-1).astype(np.float64)
    return float(np.sum(f * f)), float(np.sum(np.square(f - quantized.reshape(-1))))


def per_layer_sqnr(model, programs: dict[str, Any], images: np.ndarray, executor) -> dict[str, list[dict]]:
    """For each precision's program: SQNR of every instruction, energies pooled over `images`; each
    instruction's output comes from `executor.trace` (a NativeExecutor).

    The float side is one keras.Model with every instruction's last layer as an output, run once per image
    and shared by all precisions (the compiler emits the same instruction list whatever the precision).
    """
    import keras

    instructions = next(iter(programs.values())).instructions
    names = [insn.name.split("+")[-1] for insn in instructions]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    totals = {precision: np.zeros((len(names), 2)) for precision in programs}
    for image in tqdm(images, desc="per-layer SQNR", unit="img", leave=False):
        floats = [np.asarray(t) for t in probe([image[None]], training=False)]  # a list, like model.inputs
        for precision, program in programs.items():
            for i, (insn, out) in enumerate(executor.trace(program, image[None])):
                assert insn.name.split("+")[-1] == names[i], "instruction lists differ between precisions"
                totals[precision][i] += energies(floats[i], out)
    return {precision: [{"index": i, "instruction": insn.name, "op": insn.op.name,
                         "sqnr_db": sqnr_db(*totals[precision][i])} for i, insn in enumerate(instructions)]
            for precision in programs}


def summarize(layers: list[dict], worst: int = 5) -> dict:
    """min / median / output SQNR over the finite layers, and the `worst` lowest layers."""
    finite = [layer["sqnr_db"] for layer in layers if np.isfinite(layer["sqnr_db"])]
    # NaN (a NaN in the NPU output) sorts as the worst, not wherever sorted() happens to leave it
    lowest = sorted(layers, key=lambda layer: -np.inf if np.isnan(layer["sqnr_db"]) else layer["sqnr_db"])[:worst]
    return {"sqnr_min_db": min(finite, default=float("nan")),
            "sqnr_median_db": float(np.median(finite)) if finite else float("nan"),
            "sqnr_output_db": layers[-1]["sqnr_db"], "sqnr_finite_layers": len(finite),
            "sqnr_worst_layers": [{k: layer[k] for k in ("index", "instruction", "sqnr_db")} for layer in lowest]}


# ---- the report
def float_features(model, x: np.ndarray) -> np.ndarray:
    batches = [np.asarray(model(x[i:i + FLOAT_BATCH], training=False)) for i in range(0, len(x), FLOAT_BATCH)]
    return np.concatenate(batches)


def evaluate(network: str, precisions: list[str], rgb_inputs: list[np.ndarray], sqnr_images: int) -> dict:
    """Everything the report says about one network, as a JSON-ready dict."""
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras
    from brainwave.npu.native import NativeExecutor

    model = build_featurizer(resolve_featurizer(network))
    x = np.stack([preprocess(network, rgb) for rgb in rgb_inputs])
    reference = float_features(model, x)
    head = classifier(network)
    programs = {precision: compile_keras(model, precision=precision) for precision in precisions}
    result: dict[str, Any] = {
        "network": network, "inputs": len(x), "sqnr_images": sqnr_images,
        "classifier": {"description": head.description, "imagenet": head.imagenet}, "precisions": {},
    }
    with NativeExecutor() as executor:
        for precision, program in programs.items():
            progress = tqdm(x, desc=f"{network} {precision}", unit="img", leave=False)
            npu = np.stack([executor.run(program, image[None])[0] for image in progress])
            a = agreement(reference, npu, head)
            result["precisions"][precision] = {
                "top1_agreement": a.top1, "top5_contains_float_top1": a.top5,
                "top1_agreement_confident": a.top1_confident, "confident_inputs": a.n_confident,
                "confident_threshold": CONFIDENT, "cosine_mean": a.cosine_mean, "cosine_min": a.cosine_min}
        for precision, layers in per_layer_sqnr(model, programs, x[:sqnr_images], executor).items():
            result["precisions"][precision].update(summarize(layers), layers=layers)
    return result


def goal_verdict(results: list[dict]) -> dict:
    """The issue's bar (>= 98% top-1 agreement, EfficientNet-Lite0, default precision), or None if not measured."""
    measured = next((r["precisions"][GOAL["precision"]]["top1_agreement"] for r in results
                     if r["network"] == GOAL["network"] and GOAL["precision"] in r["precisions"]), None)
    return {**GOAL, "measured": measured, "met": None if measured is None else measured >= GOAL["top1_threshold"]}


def print_report(results: list[dict], verdict: dict) -> None:
    table = Table(title="NPU (native executor, bit-exact) vs float32 Keras featurizer")
    for column in ("network", "precision", "inputs", "top-1 agreement", "in NPU top-5", f"top-1, p>={CONFIDENT} (n)",
                   "cosine mean", "cosine min", "classifier"):
        table.add_column(column, justify="left" if column in ("network", "precision", "classifier") else "right",
                         no_wrap=column == "network")
    for r in results:
        for precision, p in r["precisions"].items():
            confident = ("n/a" if p["confident_inputs"] == 0 else
                         f"{100 * p['top1_agreement_confident']:.1f}% ({p['confident_inputs']})")
            table.add_row(r["network"], precision, str(r["inputs"]), f"[bold]{100 * p['top1_agreement']:.1f}%[/]",
                          f"{100 * p['top5_contains_float_top1']:.1f}%", confident,
                          f"{p['cosine_mean']:.5f}", f"{p['cosine_min']:.5f}",
                          "ImageNet (real)" if r["classifier"]["imagenet"] else "[yellow]seeded random[/]")
    console.print(table)
    console.print(f"Note: top-1 agreement is the headline number. The two columns after it are context: how often the "
                  f"float top-1 class is in the NPU's top 5, and top-1 agreement on the (n) inputs whose float softmax "
                  f"gives its top class p >= {CONFIDENT} (near-ties flip on tiny noise).")

    sqnr = Table(title="Per-layer SQNR, dB (accumulated error at each instruction's depth)")
    worst_column = "worst 5: instruction #, its first layer, dB"
    for column in ("network", "precision", "images", "finite layers", "min", "median", "output", worst_column):
        sqnr.add_column(column, justify="left" if column in ("network", "precision", worst_column) else "right")
    for r in results:
        for precision, p in r["precisions"].items():
            worst = "\n".join(f"#{w['index']} {w['instruction'].split('+')[0]}: {w['sqnr_db']:.1f}"
                               for w in p["sqnr_worst_layers"])
            sqnr.add_row(r["network"], precision, str(r["sqnr_images"]),
                         f"{p['sqnr_finite_layers']}/{len(p['layers'])}", f"{p['sqnr_min_db']:.1f}",
                         f"{p['sqnr_median_db']:.1f}", f"{p['sqnr_output_db']:.1f}", worst)
    console.print(sqnr)
    console.print(f"Note: {SQNR_NOTE}.")
    for r in results:
        console.print(f"Note: {r['network']} top-1 uses {r['classifier']['description']}.")
    goal = (f">= {100 * verdict['top1_threshold']:.0f}% top-1 agreement on {verdict['network']} "
            f"at {verdict['precision']}")
    if verdict["met"] is None:
        console.print(f"[yellow]Goal {goal}: not measured in this run.[/]")
    else:
        state = "[green]MET[/]" if verdict["met"] else "[red]NOT MET[/]"
        console.print(f"Goal {goal}: {state} (measured {100 * verdict['measured']:.1f}%)")


def plot(results: list[dict], path: Path) -> None:
    """One panel per network, one line per precision: SQNR against instruction index (network depth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4.5), squeeze=False)
    for ax, r in zip(axes[0], results):
        for precision, p in r["precisions"].items():
            sqnr = [layer["sqnr_db"] if np.isfinite(layer["sqnr_db"]) else np.nan for layer in p["layers"]]
            ax.plot([layer["index"] for layer in p["layers"]], sqnr, marker=".", label=precision)
        ax.set_title(f"{r['network']}: per-instruction SQNR vs float32 ({r['sqnr_images']} images)")
        ax.set_xlabel("instruction index (network depth)")
        ax.set_ylabel("SQNR, dB (accumulated error)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: list[dict], verdict: dict, args: argparse.Namespace) -> dict:
    """The JSON document: configuration, notes a reader needs, the goal verdict and every measurement."""
    return json_safe({
        "config": {"inputs": args.inputs, "sqnr_images": args.sqnr_images, "seed": SEED, "photos": list(PHOTOS),
                   "networks": args.networks, "precisions": args.precisions, "default_precision": DEFAULT_PRECISION},
        "notes": {"sqnr": SQNR_NOTE, "backend": "native executor (equal to the HLS kernel byte for byte)"},
        "goal": verdict, "results": results})


def json_safe(value: Any) -> Any:
    """Non-finite floats (an exact layer's +inf SQNR, an overflow's NaN) -> null, so strict JSON readers work."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200, help="photo variations per network (default 200)")
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--sqnr-images", type=int, default=4, help="images pooled for per-layer SQNR (default 4)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the per-layer SQNR plot here (PNG)")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.sqnr_images < 1:
        parser.error("--inputs and --sqnr-images must be at least 1")
    args.networks = list(dict.fromkeys(args.networks))  # a repeated name would only repeat the work
    args.precisions = list(dict.fromkeys(args.precisions))
    args.sqnr_images = min(args.sqnr_images, args.inputs)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rgb_inputs = variations(load_photos(), args.inputs)
    results = [evaluate(network, args.precisions, rgb_inputs, args.sqnr_images) for network in args.networks]
    verdict = goal_verdict(results)
    print_report(results, verdict)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report(results, verdict, args), indent=1, allow_nan=False))
        console.print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        console.print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
