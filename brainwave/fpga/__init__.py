"""The FPGA backend: the NPU overlay through PYNQ (driver.py), a simulated PYNQ board whose logic is the HLS
kernel (simboard.py), the overlay metadata (hwh.py, bitstreams/), and a performance model (perf/).
See docs/fpga.md."""
