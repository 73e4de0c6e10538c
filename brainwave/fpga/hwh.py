"""The overlay's hardware handoff (.hwh) and manifest: generated from hls/npu_ip.json, and checked at load.

    python -m brainwave.fpga.hwh            # (re)write bitstreams/<board>/npu.hwh and manifest.json
    python -m brainwave.fpga.hwh --check    # exit 1 if a committed file differs from what would be generated

The .hwh is the XML Vivado writes beside a .bit; PYNQ's parser (pynq.pl_server.hwh_parser) reads it to find
the IP, its address and its register map. The committed one describes the block design that
bitstreams/build_overlay.tcl builds (PS + the `npu_run` HLS IP as `npu_run_0`, s_axi_control on the PS
master port, the five m_axi masters on PS DDR). After a real Vivado build the generated .hwh replaces it;
`check_hwh` then verifies Vivado's register map against npu_ip.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from brainwave.errors import BrainwaveError

from .boards import (BITSTREAMS_DIR, BOARDS, NPU_INSTANCE, Board, compiler_isa_version, get_board, npu_ip,
                     npu_pointer_args)

ISA_PARAM = "BW_ISA_VERSION"  # .hwh parameter of the NPU cell carrying the ISA version the kernel implements


class OverlayError(BrainwaveError, RuntimeError):
    """An overlay (bitstream, .hwh, manifest) that cannot be used with this software."""


# npu_ip.json register name -> (HLS .hwh register name(s), description, fields)
_CTRL_FIELDS = [("AP_START", 0, 1, "read-write"), ("AP_DONE", 1, 1, "read-only"), ("AP_IDLE", 2, 1, "read-only"),
                ("AP_READY", 3, 1, "read-only"), ("RESERVED_1", 4, 3, "read-only"),
                ("AUTO_RESTART", 7, 1, "read-write"), ("RESERVED_2", 8, 1, "read-only"),
                ("INTERRUPT", 9, 1, "read-only"), ("RESERVED_3", 10, 22, "read-only")]
_SCALAR_REGS = {"AP_CTRL": ("CTRL", "Control signals", _CTRL_FIELDS),
                "GIE": ("GIER", "Global Interrupt Enable Register", [("Enable", 0, 1, "read-write"),
                                                                     ("RESERVED", 1, 31, "read-only")]),
                "IER": ("IP_IER", "IP Interrupt Enable Register", [("CHAN0_INT_EN", 0, 1, "read-write"),
                                                                   ("CHAN1_INT_EN", 1, 1, "read-write"),
                                                                   ("RESERVED_0", 2, 30, "read-only")]),
                "ISR": ("IP_ISR", "IP Interrupt Status Register", [("CHAN0_INT_ST", 0, 1, "read-write"),
                                                                   ("CHAN1_INT_ST", 1, 1, "read-write"),
                                                                   ("RESERVED_0", 2, 30, "read-only")])}


def hwh_registers() -> list[tuple[str, int, str, list]]:
    """(name, offset, description, fields) of every s_axi_control register, as Vitis HLS names them."""
    regs = npu_ip()["registers"]
    out = []
    for key, (name, desc, fields) in _SCALAR_REGS.items():
        out.append((name, regs[key], desc, fields))
    for arg in npu_pointer_args():
        base = regs[arg]
        out.append((f"{arg}_1", base, f"Data signal of {arg}", [(f"{arg}", 0, 32, "read-write")]))
        out.append((f"{arg}_2", base + 4, f"Data signal of {arg}", [(f"{arg}", 0, 32, "read-write")]))
    for arg in _scalar_args():
        out.append((arg, regs[arg], f"Data signal of {arg}", [(arg, 0, 32, "read-write")]))
    return out


def _scalar_args() -> list[str]:
    """The kernel's 32-bit scalar arguments (`mode`): registers that are neither block control nor pointers."""
    return [k for k in npu_ip()["registers"] if k not in _SCALAR_REGS and k not in npu_pointer_args()]


def _sub(parent, tag, **attrs):
    return ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})


def _ps_params(board: Board) -> tuple[str, str, dict]:
    """(module type, instance name, clock parameters) of the board's processing system."""
    params = {}
    if board.family == "zynq":
        div0 = round(1000.0 / board.clock_mhz)  # IO PLL 1000 MHz
        for i in range(4):
            params[f"PCW_FPGA_FCLK{i}_ENABLE"] = 1 if i == 0 else 0
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR0"] = div0 if i == 0 else 1
            params[f"PCW_FCLK{i}_PERIPHERAL_DIVISOR1"] = 1
        params["PCW_FPGA0_PERIPHERAL_FREQMHZ"] = board.clock_mhz
        return "processing_system7", "processing_system7_0", params
    div0 = round(1000.0 / board.clock_mhz)  # IOPLL 1000 MHz
    for i in range(4):
        params[f"PSU__FPGA_PL{i}_ENABLE"] = 1 if i == 0 else 0
        params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0"] = div0 if i == 0 else 1
        params[f"PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1"] = 1
    params["PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"] = board.clock_mhz
    return "zynq_ultra_ps_e", "zynq_ultra_ps_e_0", params


def generate_hwh(board: Board, isa_version: int | None = None) -> str:
    """The .hwh text for `board` (deterministic: the committed file must equal it)."""
    ip = npu_ip()
    isa_version = compiler_isa_version() if isa_version is None else isa_version
    vendor, library, name, version = ip["vlnv"].split(":")
    ps_type, ps_inst, ps_params = _ps_params(board)
    master = "M_AXI_GP0" if board.family == "zynq" else "M_AXI_HPM0_FPD"
    # gmem0 (program, status: a few words) on a general slave port; the four bulk masters on HP0-HP3
    hp_ports = ["S_AXI_GP0", "S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3"] if board.family == "zynq" else \
        ["S_AXI_HPC0_FPD", "S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD"]
    masters = sorted(set(ip["m_axi_interfaces"].values()))
    assert len(masters) == len(hp_ports), "one PS slave port per m_axi master of hls/npu_ip.json"
    clk = "FCLK_CLK0" if board.family == "zynq" else "pl_clk0"
    rst = "FCLK_RESET0_N" if board.family == "zynq" else "pl_resetn0"
    span = 0x10000

    root = ET.Element("EDKSYSTEM", {"EDWVERSION": "1.2", "TIMESTAMP": "generated", "VIVADOVERSION": "2022.1"})
    _sub(root, "SYSTEMINFO", ARCH=board.family, DEVICE=board.part, NAME="npu_overlay", PACKAGE="",
         SPEEDGRADE="", BOARD=board.name)
    _sub(root, "EXTERNALPORTS")
    modules = _sub(root, "MODULES")

    ps = _sub(modules, "MODULE", FULLNAME=f"/{ps_inst}", INSTANCE=ps_inst, IPTYPE="PERIPHERAL",
              MODCLASS="PROCESSOR", MODTYPE=ps_type, VLNV=f"xilinx.com:ip:{ps_type}:3.4")
    pars = _sub(ps, "PARAMETERS")
    for k, v in ps_params.items():
        _sub(pars, "PARAMETER", NAME=k, VALUE=v)
    mm = _sub(ps, "MEMORYMAP")
    _sub(mm, "MEMRANGE", ADDRESSBLOCK="Reg", BASENAME="C_S_AXI_CONTROL_BASEADDR",
         BASEVALUE=f"0x{board.npu_base:08X}", HIGHNAME="C_S_AXI_CONTROL_HIGHADDR",
         HIGHVALUE=f"0x{board.npu_base + span - 1:08X}", INSTANCE=NPU_INSTANCE, IS_DATA="TRUE",
         IS_INSTRUCTION="FALSE", MASTERBUSINTERFACE=master, MEMTYPE="REGISTER", SLAVEBUSINTERFACE="s_axi_control")
    ports = _sub(ps, "PORTS")
    _sub(ports, "PORT", DIR="O", NAME=clk, SIGIS="clk", SIGNAME=f"{ps_inst}_{clk}")
    _sub(ports, "PORT", DIR="O", NAME=rst, SIGIS="rst", SIGNAME=f"{ps_inst}_{rst}")

    npu = _sub(modules, "MODULE", FULLNAME=f"/{NPU_INSTANCE}", HWVERSION=version, INSTANCE=NPU_INSTANCE,
               IPTYPE="PERIPHERAL", IS_ENABLE="1", MODCLASS="PERIPHERAL", MODTYPE=name, VLNV=ip["vlnv"])
    _sub(npu, "DOCUMENTS")
    pars = _sub(npu, "PARAMETERS")
    widths = [(f"C_{m.upper()}_{what}_WIDTH", w) for m in masters
              for what, w in (("DATA", 32 if m.endswith("gmem0") else 128), ("ADDR", 64))]
    for k, v in (("C_S_AXI_CONTROL_ADDR_WIDTH", (ip["address_range"] - 1).bit_length()),
                 ("C_S_AXI_CONTROL_DATA_WIDTH", 32), *widths,
                 ("Component_Name", f"npu_overlay_{name}_0_0"), ("EDK_IPTYPE", "PERIPHERAL"),
                 ("C_S_AXI_CONTROL_BASEADDR", f"0x{board.npu_base:08X}"),
                 ("C_S_AXI_CONTROL_HIGHADDR", f"0x{board.npu_base + span - 1:08X}"),
                 (ISA_PARAM, isa_version), ("BW_CLOCK_MHZ", board.clock_mhz)):
        _sub(pars, "PARAMETER", NAME=k, VALUE=v)
    ab = _sub(_sub(npu, "ADDRESSBLOCKS"), "ADDRESSBLOCK", ACCESS="read-write", INTERFACE="s_axi_control",
              NAME="Reg", RANGE=str(span), USAGE="register")
    regs_el = _sub(ab, "REGISTERS")
    for rname, offset, desc, fields in hwh_registers():
        reg = _sub(regs_el, "REGISTER", NAME=rname)
        for pn, pv in (("DESCRIPTION", desc), ("ADDRESS_OFFSET", offset), ("SIZE", 32),
                       ("ACCESS", "read-write"), ("IS_ENABLED", "true"), ("RESET_VALUE", 0)):
            _sub(reg, "PROPERTY", NAME=pn, VALUE=pv)
        fl = _sub(reg, "FIELDS")
        for fname, bit, width, access in fields:
            f = _sub(fl, "FIELD", NAME=fname)
            for pn, pv in (("DESCRIPTION", desc), ("ADDRESS_OFFSET", 0), ("ACCESS", access),
                           ("BIT_OFFSET", bit), ("BIT_WIDTH", width)):
                _sub(f, "PROPERTY", NAME=pn, VALUE=pv)
    mm = _sub(npu, "MEMORYMAP")
    for master, port in zip(masters, hp_ports):
        _sub(mm, "MEMRANGE", ADDRESSBLOCK="HP_DDR_LOW", BASENAME="C_BASEADDR",
             BASEVALUE=f"0x{0:016X}", HIGHNAME="C_HIGHADDR", HIGHVALUE=f"0x{0x7FFFFFFF:016X}",
             INSTANCE=ps_inst, IS_DATA="TRUE", IS_INSTRUCTION="TRUE", MASTERBUSINTERFACE=master,
             MEMTYPE="MEMORY", SLAVEBUSINTERFACE=port)
    ports = _sub(npu, "PORTS")
    _sub(ports, "PORT", CLKFREQUENCY=int(board.clock_mhz * 1e6), DIR="I", NAME="ap_clk", SIGIS="clk",
         SIGNAME=f"{ps_inst}_{clk}")
    _sub(ports, "PORT", DIR="I", NAME="ap_rst_n", SIGIS="rst", SIGNAME=f"{ps_inst}_{rst}")
    _sub(ports, "PORT", DIR="O", NAME="interrupt", SENSITIVITY="LEVEL_HIGH", SIGIS="INTERRUPT",
         SIGNAME="npu_run_0_interrupt")
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def generate_manifest(board: Board, isa_version: int | None = None) -> dict:
    ip = npu_ip()
    return {
        "board": board.name,
        "description": board.description,
        "part": board.part,
        "clock_mhz": board.clock_mhz,
        "kernel_vlnv": ip["vlnv"],
        "npu_instance": NPU_INSTANCE,
        "isa_version": compiler_isa_version() if isa_version is None else isa_version,
        "npu_base_address": f"0x{board.npu_base:08X}",
        "registers": {k: f"0x{v:02X}" for k, v in ip["registers"].items()},
        "ap_ctrl_bits": ip["ap_ctrl_bits"],
        "bitstream": "npu.bit",
        "hwh": "npu.hwh",
        "hwh_source": "generated",
        "generated_by": "python -m brainwave.fpga.hwh (from hls/npu_ip.json); npu.bit by build_overlay.tcl",
    }


def board_dir(board: str) -> Path:
    return BITSTREAMS_DIR / board


def expected_files(board: Board) -> dict[Path, str]:
    d = board_dir(board.name)
    return {d / "npu.hwh": generate_hwh(board),
            d / "manifest.json": json.dumps(generate_manifest(board), indent=2) + "\n"}


# ---------------------------------------------------------------------------------------------- checks at load

def parse_hwh(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise OverlayError(f"overlay metadata {path} is missing (PYNQ needs the .hwh beside the .bit)") from None
    except ET.ParseError as exc:
        raise OverlayError(
            f"corrupted .hwh {path}: not valid XML ({exc}); regenerate it with `python -m brainwave.fpga.hwh` "
            "or copy the .hwh Vivado wrote with the bitstream") from None


def find_npu_module(root: ET.Element, path: Path) -> ET.Element:
    vlnv = npu_ip()["vlnv"]
    found = [m for m in root.iter("MODULE") if m.get("VLNV") == vlnv]
    if not found:
        kinds = sorted({m.get("VLNV", "?") for m in root.iter("MODULE")})
        raise OverlayError(f"{path} has no NPU IP with VLNV {vlnv} (it has: {', '.join(kinds) or 'no modules'})")
    return found[0]


def hwh_register_offsets(module: ET.Element) -> dict[str, int]:
    """npu_ip.json-style register offsets read from the NPU module of a .hwh."""
    offsets = {}
    for reg in module.iter("REGISTER"):
        prop = reg.find("./PROPERTY[@NAME='ADDRESS_OFFSET']")
        if prop is None:
            continue
        value = prop.get("VALUE", "")
        offsets[reg.get("NAME")] = int(value, 16 if value.lower().startswith("0x") else 10)
    out = {}
    for key, (name, _, _) in _SCALAR_REGS.items():
        if name in offsets:
            out[key] = offsets[name]
    for arg in npu_pointer_args():
        lo, hi = offsets.get(f"{arg}_1"), offsets.get(f"{arg}_2")
        if lo is not None:
            out[arg] = lo
            if hi != lo + 4:
                out[f"{arg}_high"] = hi
    for arg in _scalar_args():
        if arg in offsets:
            out[arg] = offsets[arg]
    return out


def hwh_isa_version(module: ET.Element) -> int | None:
    p = module.find(f"./PARAMETERS/PARAMETER[@NAME='{ISA_PARAM}']")
    return None if p is None else int(p.get("VALUE"))


def check_hwh(path: Path, expected_isa: int | None = None) -> dict:
    """Refuse a .hwh that is corrupted, lacks the NPU, disagrees with npu_ip.json or has another ISA version.

    Returns {"isa_version", "registers", "instance"}.
    """
    path = Path(path)
    root = parse_hwh(path)
    module = find_npu_module(root, path)
    regs = hwh_register_offsets(module)
    want = npu_ip()["registers"]
    if regs != want:
        diff = {k: (regs.get(k), want.get(k)) for k in sorted(set(regs) | set(want)) if regs.get(k) != want.get(k)}
        raise OverlayError(f"{path}: the NPU register map differs from hls/npu_ip.json (hwh, json): {diff}; "
                           "the bitstream was built from another kernel version: rebuild it from hls/")
    isa = hwh_isa_version(module)
    expected_isa = compiler_isa_version() if expected_isa is None else expected_isa
    if isa is not None and isa != expected_isa:
        raise OverlayError(_isa_message(path, isa, expected_isa))
    return {"isa_version": isa, "registers": regs, "instance": module.get("FULLNAME", "").lstrip("/")}


def _isa_message(path, overlay_isa: int, compiler_isa: int) -> str:
    if overlay_isa < compiler_isa:
        fix = ("rebuild the bitstream from the current hls/ (bitstreams/README.md), or use a compiler "
               f"of ISA version {overlay_isa}")
    else:
        fix = (f"update the compiler (brainwave.npu) to ISA version {overlay_isa}, or rebuild the bitstream from "
               "the hls/ sources matching this compiler")
    return (f"overlay {path} implements NPU ISA version {overlay_isa} but the compiler emits version "
            f"{compiler_isa}: {fix}")


def load_manifest(directory: Path, expected_isa: int | None = None) -> dict:
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise OverlayError(f"{path} is missing: every overlay folder needs its manifest") from None
    except json.JSONDecodeError as exc:
        raise OverlayError(f"corrupted manifest {path}: {exc}") from None
    expected_isa = compiler_isa_version() if expected_isa is None else expected_isa
    if manifest.get("kernel_vlnv") != npu_ip()["vlnv"]:
        raise OverlayError(f"{path}: kernel_vlnv {manifest.get('kernel_vlnv')!r} is not {npu_ip()['vlnv']}")
    if int(manifest.get("isa_version", -1)) != expected_isa:
        raise OverlayError(_isa_message(path, int(manifest.get("isa_version", -1)), expected_isa))
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare, exit 1 on a difference")
    ap.add_argument("--board", action="append", help="only these boards (default: all)")
    ap.add_argument("--adopt", metavar="BOARD",
                    help="after a Vivado build: check the .hwh Vivado wrote (bitstreams/BOARD/npu.hwh) against "
                         "npu_ip.json and the compiler's ISA version, and mark it in the manifest as Vivado's")
    args = ap.parse_args(argv)
    if args.adopt:
        board = get_board(args.adopt)
        info = check_hwh(board_dir(board.name) / "npu.hwh")
        manifest = generate_manifest(board)
        manifest["hwh_source"] = "vivado"
        if info["isa_version"] is None:
            print("note: the Vivado .hwh carries no BW_ISA_VERSION parameter; the manifest's isa_version is used")
        (board_dir(board.name) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"adopted {board_dir(board.name) / 'npu.hwh'}: register map matches hls/npu_ip.json")
        return 0
    bad = 0
    for name in args.board or sorted(BOARDS):
        mpath = board_dir(name) / "manifest.json"
        if mpath.is_file() and json.loads(mpath.read_text()).get("hwh_source") == "vivado":
            check_hwh(board_dir(name) / "npu.hwh")  # a real build's .hwh: checked, never overwritten
            continue
        for path, text in expected_files(get_board(name)).items():
            if args.check:
                if not path.is_file() or path.read_text() != text:
                    print(f"out of date: {path}")
                    bad = 1
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {path}")
    return bad


if __name__ == "__main__":
    sys.exit(main())
