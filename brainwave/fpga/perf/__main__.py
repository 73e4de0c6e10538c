"""python -m brainwave.fpga.perf BOARD [--model M] [--precision P] [--per-layer] [--json]"""
from .report import main

raise SystemExit(main())
