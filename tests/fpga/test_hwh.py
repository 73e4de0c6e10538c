"""The committed overlay metadata is generated from hls/npu_ip.json and refused when it is wrong."""
from __future__ import annotations

import json
import shutil

import pytest

from brainwave.fpga import hwh
from brainwave.fpga.boards import BITSTREAMS_DIR, BOARDS, compiler_isa_version, get_board, npu_ip, npu_pointer_args
from brainwave.fpga.hwh import OverlayError


def test_committed_files_are_up_to_date():
    assert hwh.main(["--check"]) == 0, "run `python -m brainwave.fpga.hwh` and commit bitstreams/"


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_hwh_register_map_equals_kernel_json(board):
    """PYNQ's own HWH parser reads the same offsets the kernel's npu_ip.json declares."""
    from pynq.pl_server.hwh_parser import _HWHUltrascale, _HWHZynq

    path = BITSTREAMS_DIR / board / "npu.hwh"
    cls = _HWHZynq if get_board(board).family == "zynq" else _HWHUltrascale
    parser = cls(str(path))
    (name,) = [k for k, v in parser.ip_dict.items() if v.get("type") == npu_ip()["vlnv"]]
    regs = parser.ip_dict[name]["registers"]
    want = npu_ip()["registers"]
    assert regs["CTRL"]["address_offset"] == want["AP_CTRL"]
    assert regs["GIER"]["address_offset"] == want["GIE"]
    assert regs["IP_IER"]["address_offset"] == want["IER"]
    assert regs["IP_ISR"]["address_offset"] == want["ISR"]
    for arg in npu_pointer_args():
        assert regs[f"{arg}_1"]["address_offset"] == want[arg]
        assert regs[f"{arg}_2"]["address_offset"] == want[arg] + 4
    bits = {f: v["bit_offset"] for f, v in regs["CTRL"]["fields"].items()}
    for field, bit in npu_ip()["ap_ctrl_bits"].items():
        assert bits[field.upper()] == bit
    assert parser.ip_dict[name]["phys_addr"] == get_board(board).npu_base
    manifest = json.loads((BITSTREAMS_DIR / board / "manifest.json").read_text())
    assert manifest["isa_version"] == compiler_isa_version()
    assert {k: int(v, 16) for k, v in manifest["registers"].items()} == want


def test_check_hwh_accepts_committed():
    info = hwh.check_hwh(BITSTREAMS_DIR / "kv260" / "npu.hwh")
    assert info["isa_version"] == compiler_isa_version()
    assert info["instance"] == "npu_run_0"


def _overlay_copy(tmp_path, board="kv260"):
    d = tmp_path / board
    shutil.copytree(BITSTREAMS_DIR / board, d)
    return d


def test_corrupted_hwh_refused_at_load(tmp_path):
    from brainwave.fpga.driver import NpuAccelerator

    d = _overlay_copy(tmp_path)
    text = (d / "npu.hwh").read_text()
    (d / "npu.hwh").write_text(text[: len(text) // 2])  # truncated, as a failed copy leaves it
    with pytest.raises(OverlayError, match=r"corrupted \.hwh .*npu\.hwh.*not valid XML"):
        NpuAccelerator("kv260", simulate=True, overlay_dir=d)


def test_hwh_with_other_register_map_refused(tmp_path):
    d = _overlay_copy(tmp_path)
    text = (d / "npu.hwh").read_text()
    at = npu_ip()["registers"]["arena"]
    reg = '<REGISTER NAME="arena_1">\n              <PROPERTY NAME="DESCRIPTION" VALUE="Data signal of arena" />\n'
    moved = text.replace(reg + f'              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="{at}" />',
                         reg + f'              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="{at + 4}" />')
    assert moved != text
    text = moved
    (d / "npu.hwh").write_text(text)
    with pytest.raises(OverlayError, match="register map differs from hls/npu_ip.json.*arena.*rebuild"):
        hwh.check_hwh(d / "npu.hwh")


def test_wrong_isa_version_refused(tmp_path):
    from brainwave.fpga.driver import NpuAccelerator

    isa = compiler_isa_version()
    d = tmp_path / "kv260"
    d.mkdir()
    board = get_board("kv260")
    (d / "npu.hwh").write_text(hwh.generate_hwh(board, isa_version=isa + 1))
    (d / "manifest.json").write_text(json.dumps(hwh.generate_manifest(board, isa_version=isa)))
    with pytest.raises(OverlayError, match=rf"implements NPU ISA version {isa + 1} but the compiler emits "
                                           rf"version {isa}: update the compiler"):
        NpuAccelerator("kv260", simulate=True, overlay_dir=d)
    # an older overlay: the message says to rebuild the bitstream
    (d / "npu.hwh").write_text(hwh.generate_hwh(board, isa_version=isa))
    (d / "manifest.json").write_text(json.dumps(hwh.generate_manifest(board, isa_version=isa - 1)))
    with pytest.raises(OverlayError, match=rf"version {isa - 1} but the compiler emits version {isa}: "
                                           "rebuild the bitstream"):
        NpuAccelerator("kv260", simulate=True, overlay_dir=d)


def test_missing_bitstream_on_hardware_is_clear(tmp_path):
    from brainwave.fpga.driver import NpuAccelerator
    from brainwave.fpga.simboard import make_board

    d = _overlay_copy(tmp_path)
    assert not (d / "npu.bit").exists()
    with pytest.raises(OverlayError, match=r"no bitstream .*npu\.bit for board kv260: build it .*Vivado"):
        NpuAccelerator("kv260", simulate=False, overlay_dir=d, device=make_board("kv260"))


def test_manifest_for_another_board_refused(tmp_path):
    from brainwave.fpga.driver import NpuAccelerator

    d = _overlay_copy(tmp_path, "zcu104")
    with pytest.raises(OverlayError, match="is for board 'zcu104', not 'kv260'"):
        NpuAccelerator("kv260", simulate=True, overlay_dir=d)
