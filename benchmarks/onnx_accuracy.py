"""ONNX featurizers on the NPU vs onnxruntime in float32: top-1 agreement and logit cosine on the accuracy
report's inputs (benchmarks/accuracy_report.py: seeded crops and flips of scikit-image's photos).

    python benchmarks/onnx_accuracy.py [--inputs 200] [--precisions bfp20 bfp16] [--json OUT.json] [FILE.onnx ...]

Without files it builds three ONNX CNNs (tests/npu/onnx_nets.py): a PyTorch-style ResNet-18 and Keras'
MobileNetV2 exported by tf2onnx, random weights with batch norms and classifier set from the statistics of the
first 16 inputs, and the catalog's EfficientNet-Lite2 with its trained weights exported by tf2onnx, each with a
1000-way classifier, so top-1 is the argmax of the model's
own logits ("float_top1_classes" counts the distinct float top-1 classes: agreement means little if it is 1). A file given on the
command line must take one RGB image, N x C x H x W (ImageNet mean/std) or N x H x W x C ([-1, 1]); the 224 x 224
inputs are resized to its H x W. The NPU side is the compiled program on the native executor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import REPO, script_module  # a sibling script (benchmarks/ is on sys.path)

sys.path.insert(0, str(REPO))  # the test networks (tests/npu/onnx_nets.py) are built by the test package
IMAGENET_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
IMAGENET_STD = np.array([58.395, 57.12, 57.375], np.float32)


def _accuracy_report():
    return script_module(REPO / "benchmarks" / "accuracy_report.py", "accuracy_report")


def to_input(shape: tuple[int, ...], rgb: np.ndarray) -> np.ndarray:
    """uint8 (224, 224, 3) RGB -> the model's input: NCHW with ImageNet mean/std, or NHWC in [-1, 1], resized to
    the model's height and width."""
    from PIL import Image

    nchw = shape[1] == 3
    size = tuple(shape[2:4] if nchw else shape[1:3])
    if size != rgb.shape[:2]:
        rgb = np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.BILINEAR))
    x = rgb.astype(np.float32)
    if nchw:
        return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
    return (x / np.float32(127.5) - 1)[None]


def builtin_models(rgb: list[np.ndarray]) -> dict:
    from tests.npu import onnx_nets

    calibration = rgb[:16]  # batch norms and classifiers set from these (see onnx_nets); the report uses all
    return {"resnet18 (PyTorch-style)": onnx_nets.resnet18(calibration=np.concatenate(
                [to_input((1, 3, 224, 224), x) for x in calibration])),
            "mobilenet_v2 (tf2onnx)": onnx_nets.mobilenet_v2(np.concatenate(
                [to_input((1, 224, 224, 3), x) for x in calibration])),
            "efficientnet-lite2 (trained, tf2onnx)": onnx_nets.efficientnet_lite2()}


def evaluate(name: str, model, rgb: list[np.ndarray], precisions: list[str]) -> dict:
    import onnxruntime as ort

    from brainwave.npu.compiler import compile_onnx
    from brainwave.npu.executor import create_executor

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    inputs = [to_input(tuple(source.shape), x) for x in rgb]
    want = np.stack([session.run(None, {source.name: x})[0].reshape(-1) for x in inputs])
    executor = create_executor("native")
    result = {"network": name, "inputs": len(inputs), "float_top1_classes": len(set(want.argmax(1).tolist())),
              "precisions": {}}
    for precision in precisions:
        compiled = compile_onnx(model, precision)
        got = np.stack([compiled.run(executor, x).reshape(-1) for x in inputs])
        cosine = np.sum(got * want, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
        result["precisions"][precision] = {
            "top1_agreement": float(np.mean(got.argmax(1) == want.argmax(1))),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "instructions": len(compiled.program.instructions)}
        print(f"{name:38s} {precision}: top-1 agreement {result['precisions'][precision]['top1_agreement']:.3f} "
              f"({len(inputs)} inputs), logit cosine mean {cosine.mean():.6f} min {cosine.min():.6f}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="ONNX models (default: the built-in ResNet-18, MobileNetV2 and EfficientNet-Lite2)")
    parser.add_argument("--inputs", type=int, default=200, help="photo variations (default 200)")
    parser.add_argument("--precisions", nargs="+", default=["bfp20", "bfp16"], choices=["bfp20", "bfp16", "bfp12"])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    report = _accuracy_report()
    rgb = report.variations(report.load_photos(), args.inputs)
    if args.files:
        import onnx

        models = {str(path): onnx.load_model_from_string(path.read_bytes()) for path in args.files}
    else:
        models = builtin_models(rgb)
    results = [evaluate(name, model, rgb, args.precisions) for name, model in models.items()]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
