"""Check an NPU overlay: load it, run the known-answer self-test, time a few runs.

    python -m brainwave.fpga [--board kv260] [--simulate | --hardware] [--runs 5]
"""
from __future__ import annotations

import argparse
import sys
import time

from .boards import BOARDS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="kv260", choices=sorted(BOARDS))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--simulate", dest="simulate", action="store_true", default=None,
                      help="the simulated board (default off a Zynq)")
    mode.add_argument("--hardware", dest="simulate", action="store_false", help="real PYNQ hardware")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    from brainwave.featurizer.backend import BackendError

    from .driver import NpuAccelerator, selftest_program
    from .hwh import OverlayError

    try:
        t0 = time.perf_counter()
        acc = NpuAccelerator(args.board, simulate=args.simulate)
        load_s = time.perf_counter() - t0
        program, x, expected = selftest_program()
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = acc.run(program, x)
            times.append(time.perf_counter() - t)
            if out.tobytes() != expected.tobytes():
                print("FAIL: known-answer output differs", file=sys.stderr)
                return 1
    except (OverlayError, BackendError) as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    kind = "simulated board" if acc.simulated else "hardware"
    print(f"{args.board} ({kind}): overlay {acc.bitfile} loaded and self-tested in {load_s:.2f} s; "
          f"{args.runs} known-answer runs OK, best {min(times) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
