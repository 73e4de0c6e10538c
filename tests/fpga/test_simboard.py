"""The simulated board behind the unmodified PYNQ code paths, and the driver's normal operation."""
from __future__ import annotations

import threading

import numpy as np
import pytest


def test_overlay_binds_npu_driver_by_vlnv(accel):
    import pynq

    from brainwave.fpga.driver import npu_ip_class

    ov = accel.overlay
    assert isinstance(ov, pynq.Overlay)
    assert ov.ip_dict["npu_run_0"]["type"] == "brainwave.org:hls:npu_run:2.0"
    assert type(ov.npu_run_0) is npu_ip_class()
    assert isinstance(ov.npu_run_0, pynq.DefaultIP)
    assert ov.is_loaded()
    assert pynq.Device.active_device is accel.device


def test_registers_through_pynq_mmio(accel):
    ip = accel.ip
    ip.set_pointer("arena", 0x1_2345_6780)
    assert ip.read(0x34) == 0x23456780 and ip.read(0x38) == 0x1  # Vitis HLS: the fourth pointer argument
    assert ip.get_pointer("arena") == 0x1_2345_6780
    assert ip.read(0x00) & 0b100  # ap_idle
    ip.write(0x08, 1)
    assert ip.read(0x08) == 1
    ip.write(0x08, 0)


def test_allocate_gives_physical_addresses_and_needs_sync(accel):
    import pynq
    from pynq.buffer import PynqBuffer

    a = pynq.allocate((1000,), np.float32)
    b = pynq.allocate((10,), np.uint32)
    assert isinstance(a, PynqBuffer)
    assert a.physical_address >= accel.device.board.ddr_base and a.physical_address % 4096 == 0
    assert b.physical_address >= a.physical_address + a.nbytes
    a[:] = 7.0
    dev = accel.device.ddr_view(a.physical_address, a.nbytes, np.float32)
    assert not dev.any(), "DDR must not see CPU writes before flush()"
    a.flush()
    assert (dev == 7.0).all()
    dev[3] = 1.5
    assert a[3] == 7.0
    a.invalidate()
    assert a[3] == 1.5


def test_smoke_program_bit_exact(accel, smoke):
    img, x, expected = smoke
    got = accel.run(img, x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def test_done_is_clear_on_read_and_kernel_runs_on_worker(accel, smoke):
    img, x, expected = smoke
    accel.run(img, x)
    runs = accel.device.ips[accel.device.board.npu_base].runs
    accel.run(img, x)
    assert accel.device.ips[accel.device.board.npu_base].runs == runs + 1
    ctrl = accel.ip.ctrl()
    assert not ctrl & 0b10, "ap_done was read by the driver, it must be clear now"


def test_bad_program_status_reported(accel, smoke):
    """The kernel on the board refuses a program (here one `load` would have refused too): its status comes back."""
    from brainwave.npu.isa import Program, ProgramError, Status

    img, x, expected = smoke
    prog = bytearray(img.program_bytes())
    prog[64:68] = (99).to_bytes(4, "little")  # opcode 99 in the first instruction
    bad = Program.from_bytes(bytes(prog), img.weights)
    with pytest.raises(ProgramError, match=r"bad opcode \(status 3\)") as info:
        accel.run(bad, x)
    assert info.value.status == Status.BAD_OPCODE
    assert bad.digest not in accel._programs, "a refused program is not kept resident"
    assert accel.run(img, x).tobytes() == expected.tobytes()


def test_validated_once_then_trusted_runs(accel, smoke):
    """The kernel checks a program once, when its blobs reach device memory (mode VALIDATE: one run that writes
    no output), and every request after that is a TRUSTED_RUN (no per-call checks), second ports included."""
    from brainwave.fpga.boards import npu_buffer_of, npu_ip, npu_pointer_args
    from brainwave.npu.isa import RunMode

    img, x, expected = smoke
    other = _variant(img, 48)  # a program no other test made resident on the shared accelerator
    npu = accel.device.ips[accel.device.board.npu_base]
    runs = npu.runs
    assert accel.run(other, x).tobytes() == expected.tobytes()
    assert npu.runs == runs + 2, "a new program: VALIDATE, then the request"
    assert accel.ip.read(npu_ip()["registers"]["mode"]) == RunMode.TRUSTED_RUN
    for name in npu_pointer_args():
        assert accel.ip.get_pointer(name) == accel._buffers[npu_buffer_of(name)].device_address
    assert accel.run(other, x).tobytes() == expected.tobytes()
    assert npu.runs == runs + 3, "resident: one run per request"


def _variant(img, pad: int):
    """The same program with `pad` more (unused) weight bytes: another program to keep resident."""
    import dataclasses

    return dataclasses.replace(img, weights=img.weights + b"\0" * pad)


def test_weights_resident_and_copied_once_per_program(accel, smoke):
    img, x, expected = smoke
    other = _variant(img, 16)
    accel.run(img, x)
    swaps = accel.swaps
    weights_addr = accel._buffers["weights"].device_address
    for _ in range(3):
        accel.run(img, x)
    assert accel.swaps == swaps, "same program: weights stay resident"
    assert accel.run(other, x).tobytes() == expected.tobytes()
    assert accel.swaps == swaps + 1
    assert accel._buffers["weights"].device_address != weights_addr
    # two models served side by side: no more copies, each request points the NPU at its own weights
    for _ in range(2):
        assert accel.run(img, x).tobytes() == expected.tobytes()
        assert accel.ip.get_pointer("weights") == weights_addr
        assert accel.run(other, x).tobytes() == expected.tobytes()
    assert accel.swaps == swaps + 1


def test_resident_budget_evicts_least_recently_used(smoke):
    from brainwave.fpga.driver import NpuAccelerator

    img, x, expected = smoke
    size = len(img.program_bytes()) + len(img.weights)
    acc = NpuAccelerator("kv260", simulate=True, resident_bytes=2 * size + 100, selftest=False)
    a, b, c = img, _variant(img, 16), _variant(img, 32)
    for p in (a, b, a, c, a, b):  # c evicts b (a was used more recently), then b evicts c
        assert acc.run(p, x).tobytes() == expected.tobytes()
    assert acc.swaps == 4  # a, b, c, b
    assert set(acc._programs) == {a.digest, b.digest}
    acc.close()


def test_concurrent_requests_are_serialised(accel, smoke):
    img, x, expected = smoke
    rng = np.random.default_rng(0)
    inputs = [x * np.float32(s) for s in (1.0, 0.5, 2.0, -1.0, 0.25, 4.0)]
    want = [accel.run(img, xi).tobytes() for xi in inputs]
    results = [None] * len(inputs)

    def work(i):
        results[i] = accel.run(img, inputs[i]).tobytes()

    threads = [threading.Thread(target=work, args=(i,)) for i in rng.permutation(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == want
    assert len(set(want)) == len(want)


def test_simulated_pl_clock_set_from_hwh(accel):
    import pynq.ps

    if pynq.ps.CPU_ARCH_IS_SUPPORTED:
        pytest.skip("real Zynq")
    assert pynq.ps.Clocks._instance.get_pl_clk(0) == accel.device.board.clock_mhz


@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_other_boards_load_and_run(board, smoke, capsys):
    """Zynq-7000 (processing_system7, PYNQ's _HWHZynq) and another UltraScale+ board, via the CLI check."""
    from brainwave.fpga.__main__ import main

    assert main(["--board", board, "--simulate", "--runs", "2"]) == 0
    assert f"{board} (simulated board)" in capsys.readouterr().out


def test_cli_check_reports_missing_bitstream(capsys):
    from brainwave.fpga.__main__ import main

    assert main(["--board", "zcu104", "--hardware"]) == 1
    assert "no bitstream" in capsys.readouterr().err
