"""The NPU instruction set and binary program format (docs/isa.md): the one definition the compiler, the
executors, the FPGA driver and (through the generated C header) the HLS kernel and the native executor share.

A program is a 64-byte header and 128-byte instructions (little-endian uint32 words) plus a separate
weights blob. `python -m brainwave.npu.isa --c-header` prints hls/src/npu_isa.h.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from brainwave.errors import BrainwaveError

from .numerics import BLOCK, EXP_MAX, EXP_MIN, Precision

ISA_VERSION = 3  # 2: bfp20 and weight exponents checked to lie in [EXP_MIN, EXP_MAX]; 3: CONCAT
MAGIC = 0x504E5742  # "BWNP" little-endian
HEADER_WORDS = 16
INSN_WORDS = 32
MAX_CHANNELS = 4096  # the kernel's on-chip buffers: CONV2D in_c/out_c and GLOBAL_AVGPOOL C at most this


class Opcode(IntEnum):
    CONV2D = 1
    ADD = 2
    MAXPOOL = 3
    AVGPOOL = 4
    GLOBAL_AVGPOOL = 5
    ACTIVATION = 6
    PAD = 7
    CONCAT = 8  # ISA v3: in_c channels of in_offset, then out_c - in_c of in2_offset, per pixel


class Activation(IntEnum):
    NONE = 0
    RELU = 1
    RELU6 = 2


class Status(IntEnum):
    """What the kernel writes to *status, and what every executor raises (as ProgramError) for the same program."""

    OK = 0
    BAD_MAGIC = 1
    BAD_VERSION = 2
    BAD_OPCODE = 3
    OUT_OF_BOUNDS = 4
    BAD_FIELD = 5


class RunMode(IntEnum):
    """The kernel's `mode` argument (docs/isa.md "Kernel interface"): validation once, at load, then trusted runs.
    Any other value is RUN, the safe default."""

    RUN = 0  # check the whole program, then run it
    VALIDATE = 1  # check the whole program, write the status, touch nothing else
    TRUSTED_RUN = 2  # run without checks: only a program the same buffers held when VALIDATE passed


STATUS_TEXT = {
    Status.OK: "ok",
    Status.BAD_MAGIC: "bad magic",
    Status.BAD_VERSION: "bad ISA version",
    Status.BAD_OPCODE: "bad opcode",
    Status.OUT_OF_BOUNDS: "out-of-bounds offset",
    Status.BAD_FIELD: "invalid instruction field",
}

# Word positions. Header words 14-15 and instruction words 26-31 are reserved (zero).
HEADER_FIELDS = (
    "magic", "isa_version", "num_instructions", "arena_words", "weights_bytes",
    "input_offset", "input_h", "input_w", "input_c",
    "output_offset", "output_h", "output_w", "output_c", "insn_words",
)
INSN_FIELDS = (
    "opcode", "activation", "precision",
    "in_offset", "in_h", "in_w", "in_c",
    "out_offset", "out_h", "out_w", "out_c",
    "kernel_h", "kernel_w", "stride_h", "stride_w",
    "pad_top", "pad_left", "pad_bottom", "pad_right",
    "groups", "weight_mant_offset", "weight_exp_offset", "bias_offset",
    "has_residual", "residual_offset", "in2_offset",
)
# The same fields as members of the C struct `bw_insn` the kernel and the native executor decode into
# (c_header): short names, because the C code spells them out in every loop bound and address.
C_INSN_MEMBERS = dict(zip(INSN_FIELDS, (
    "op", "act", "prec", "in_off", "in_h", "in_w", "in_c", "out_off", "out_h", "out_w", "out_c",
    "kh", "kw", "sh", "sw", "pt", "pl", "pb", "pr", "groups", "mant_off", "exp_off", "bias_off",
    "has_res", "res_off", "in2_off",
)))


class ProgramError(BrainwaveError, ValueError):
    """A program the NPU refuses; `status` is the code the kernel would write."""

    def __init__(self, status: Status, message: str):
        self.status = Status(status)
        super().__init__(f"{STATUS_TEXT[self.status]} (status {int(self.status)}): {message}")


@dataclass
class Instruction:
    """One 32-word instruction; unused fields stay 0. `name` (the source layer) is metadata, not encoded."""

    opcode: int
    activation: int = 0
    precision: int = 0
    in_offset: int = 0
    in_h: int = 0
    in_w: int = 0
    in_c: int = 0
    out_offset: int = 0
    out_h: int = 0
    out_w: int = 0
    out_c: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    groups: int = 0
    weight_mant_offset: int = 0
    weight_exp_offset: int = 0
    bias_offset: int = 0
    has_residual: int = 0
    residual_offset: int = 0
    in2_offset: int = 0
    name: str = field(default="", compare=False)

    def words(self) -> list[int]:
        w = [int(getattr(self, f)) for f in INSN_FIELDS]
        return w + [0] * (INSN_WORDS - len(w))

    @classmethod
    def from_words(cls, words, name: str = "") -> "Instruction":
        return cls(**{f: int(words[i]) for i, f in enumerate(INSN_FIELDS)}, name=name)

    @property
    def op(self) -> Opcode | int:
        try:
            return Opcode(self.opcode)
        except ValueError:
            return self.opcode

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_h, self.in_w, self.in_c)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_h, self.out_w, self.out_c)

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.in_c and self.out_c == self.in_c

    @property
    def weight_blocks(self) -> int:
        """Number of weight blocks a CONV2D reads."""
        taps = self.kernel_h * self.kernel_w
        if self.is_depthwise:
            return taps * -(-self.in_c // BLOCK)
        return self.out_c * taps * -(-(self.in_c // max(self.groups, 1)) // BLOCK)



@dataclass(frozen=True)
class OutputSlice:
    """One of several named outputs of a program (docs/isa.md "Several outputs"): the program's single output
    tensor is their concatenation, flattened, and this one is its elements [start, start + size), shaped
    `shape` (H, W, C). Host metadata, not part of the program bytes."""

    name: str
    shape: tuple[int, int, int]
    start: int

    @property
    def size(self) -> int:
        h, w, c = self.shape
        return h * w * c


def decode_header(program: bytes | memoryview) -> dict[str, int]:
    """The 64-byte header's fields by name (HEADER_FIELDS): the one place header words are read by position."""
    if len(program) < HEADER_WORDS * 4:
        raise ProgramError(Status.BAD_FIELD, f"{len(program)} bytes is shorter than the 64-byte header")
    return dict(zip(HEADER_FIELDS, struct.unpack_from(f"<{len(HEADER_FIELDS)}I", program)))


@dataclass(eq=False)
class Program:
    """A compiled program: instructions, the weights blob and the arena layout (header fields).

    Executors keep what they derive from a program (repacked weights, device buffers) per Program object, so a
    program is not meant to be changed once built; `digest` identifies its contents."""

    instructions: list[Instruction]
    weights: bytes
    arena_words: int
    input_offset: int
    input_shape: tuple[int, int, int]
    output_offset: int
    output_shape: tuple[int, int, int]
    isa_version: int = ISA_VERSION
    outputs: tuple[OutputSlice, ...] = ()  # several named outputs packed in the one output tensor, or ()

    def __post_init__(self) -> None:
        h, w, c = self.output_shape
        for o in self.outputs:
            if o.start < 0 or o.start + o.size > h * w * c:
                raise ProgramError(Status.BAD_FIELD, f"output {o.name!r} ({o.shape} at element {o.start}) lies "
                                   f"outside the program's output tensor {self.output_shape}")

    def split(self, y) -> list:
        """The named outputs (as `outputs` orders them) of an output `y` of this program: views shaped
        (1, H, W, C) when `y` has its batch axis, else (H, W, C); [y] for a program with one output."""
        if not self.outputs:
            return [y]
        batched = y.ndim == 4
        flat = y.reshape(-1)
        return [flat[o.start:o.start + o.size].reshape((1, *o.shape) if batched else o.shape) for o in self.outputs]

    def header_words(self) -> list[int]:
        values = dict(
            magic=MAGIC, isa_version=self.isa_version, num_instructions=len(self.instructions),
            arena_words=self.arena_words, weights_bytes=len(self.weights), input_offset=self.input_offset,
            input_h=self.input_shape[0], input_w=self.input_shape[1], input_c=self.input_shape[2],
            output_offset=self.output_offset, output_h=self.output_shape[0], output_w=self.output_shape[1],
            output_c=self.output_shape[2], insn_words=INSN_WORDS,
        )
        return [values[f] for f in HEADER_FIELDS] + [0] * (HEADER_WORDS - len(HEADER_FIELDS))

    def program_bytes(self) -> bytes:
        words = self.header_words()
        for insn in self.instructions:
            words += insn.words()
        return struct.pack(f"<{len(words)}I", *words)

    @classmethod
    def from_bytes(cls, program: bytes, weights: bytes, names: list[str] | None = None,
                   outputs: tuple[OutputSlice, ...] = ()) -> "Program":
        """Decode blobs; checks the framing (magic, version, sizes) so a truncated file is an error here."""
        program = bytes(program)
        h = decode_header(program)
        if h["magic"] != MAGIC:
            raise ProgramError(Status.BAD_MAGIC, f"magic 0x{h['magic']:08X} is not 0x{MAGIC:08X} (not an NPU program)")
        if h["isa_version"] != ISA_VERSION:
            raise ProgramError(Status.BAD_VERSION, f"program is ISA version {h['isa_version']}, this build "
                               f"speaks {ISA_VERSION}; recompile the model")
        if h["insn_words"] != INSN_WORDS:
            raise ProgramError(Status.BAD_FIELD, f"insn_words is {h['insn_words']}, must be {INSN_WORDS}")
        n = h["num_instructions"]
        want = (HEADER_WORDS + n * INSN_WORDS) * 4
        if len(program) != want:
            raise ProgramError(Status.BAD_FIELD, f"{n} instructions need {want} bytes, the program has {len(program)}")
        if len(weights) != h["weights_bytes"]:
            raise ProgramError(Status.OUT_OF_BOUNDS, f"weights blob has {len(weights)} bytes, the header says "
                               f"{h['weights_bytes']}")
        words = struct.unpack_from(f"<{n * INSN_WORDS}I", program, HEADER_WORDS * 4)
        names = list(names or [""] * n)
        insns = [Instruction.from_words(words[i * INSN_WORDS:(i + 1) * INSN_WORDS], names[i] if i < len(names) else "")
                 for i in range(n)]
        return cls(insns, bytes(weights), h["arena_words"], h["input_offset"],
                   (h["input_h"], h["input_w"], h["input_c"]), h["output_offset"],
                   (h["output_h"], h["output_w"], h["output_c"]), outputs=tuple(outputs))

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the program and weights blobs: the identity of what a device must hold to run it."""
        h = hashlib.sha256(self.program_bytes())
        h.update(self.weights)
        return h.hexdigest()

    # --- files: one zip holding program.bin, weights.bin (what the HLS test bench reads), layers.json and, for a
    # program with several outputs, outputs.json
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("program.bin", self.program_bytes())
            z.writestr("weights.bin", self.weights)
            z.writestr("layers.json", json.dumps([i.name for i in self.instructions]))
            if self.outputs:
                z.writestr("outputs.json", json.dumps([{"name": o.name, "shape": list(o.shape), "start": o.start}
                                                       for o in self.outputs]))
        tmp.replace(path)  # never a half-written program under the real name
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Program":
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
            names = json.loads(z.read("layers.json")) if "layers.json" in members else None
            outputs = json.loads(z.read("outputs.json")) if "outputs.json" in members else []
            return cls.from_bytes(z.read("program.bin"), z.read("weights.bin"), names,
                                  tuple(OutputSlice(o["name"], tuple(o["shape"]), o["start"]) for o in outputs))



# --------------------------------------------------------------------------------------------------------
# C header

def c_header() -> str:
    """hls/src/npu_isa.h, generated so the kernel can never drift from this definition."""
    lines = [
        "/* GENERATED by `python -m brainwave.npu.isa --c-header` from brainwave/npu/isa.py: do not edit.",
        " * The program format is docs/isa.md; tests/hls checks this file is current. */",
        "#ifndef BW_NPU_ISA_H",
        "#define BW_NPU_ISA_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define BW_MAGIC 0x{MAGIC:08X}u",
        f"#define BW_ISA_VERSION {ISA_VERSION}u",
        f"#define BW_HEADER_WORDS {HEADER_WORDS}u",
        f"#define BW_INSN_WORDS {INSN_WORDS}u",
        f"#define BW_BLOCK {BLOCK}",
        f"#define BW_EXP_MIN ({EXP_MIN})",
        f"#define BW_EXP_MAX {EXP_MAX}",
        f"#define BW_MAX_CHANNELS {MAX_CHANNELS}",
        "",
    ]
    lines += [f"#define BW_OP_{op.name} {op.value}u" for op in Opcode] + [""]
    lines += [f"#define BW_ACT_{a.name} {a.value}u" for a in Activation] + [""]
    lines += [f"#define BW_PREC_{p.name} {p.value}u" for p in Precision] + [""]
    lines += [f"#define BW_MBITS_{p.name} {p.mantissa_bits}" for p in Precision] + [""]
    lines += [f"#define BW_WBITS_{p.name} {p.weight_mantissa_bits}" for p in Precision] + [""]
    lines += [f"#define BW_BLOCK_BYTES_{p.name} {p.block_bytes}u" for p in Precision] + [""]
    lines += [f"#define BW_STATUS_{s.name} {s.value}u" for s in Status] + [""]
    lines += [f"#define BW_MODE_{m.name} {m.value}u" for m in RunMode] + [""]
    lines += [f"#define BW_H_{name.upper()} {i}" for i, name in enumerate(HEADER_FIELDS)] + [""]
    lines += [f"#define BW_I_{name.upper()} {i}" for i, name in enumerate(INSN_FIELDS)] + [""]
    lines += ["/* One instruction's fields (docs/isa.md), decoded once by bw_decode_insn. */", "typedef struct {"]
    lines += [f"    uint32_t {C_INSN_MEMBERS[name]}; /* {name} */" for name in INSN_FIELDS]
    lines += ["} bw_insn;", "",
              "static inline void bw_decode_insn(const uint32_t w[BW_INSN_WORDS], bw_insn *d) {",
              "#pragma HLS INLINE"]
    lines += [f"    d->{C_INSN_MEMBERS[name]} = w[BW_I_{name.upper()}];" for name in INSN_FIELDS]
    lines += ["}", "", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brainwave.npu.isa", description=__doc__.splitlines()[0])
    parser.add_argument("--c-header", action="store_true", help="print the C header for the HLS kernel")
    parser.add_argument("--dump", metavar="PROGRAM", help="list the instructions of a saved program file")
    args = parser.parse_args(argv)
    if args.c_header:
        sys.stdout.write(c_header())
        return 0
    if args.dump:
        prog = Program.load(args.dump)
        print(f"ISA v{prog.isa_version}: {len(prog.instructions)} instructions, arena {prog.arena_words} floats, "
              f"weights {len(prog.weights)} bytes, input {prog.input_shape} output {prog.output_shape}")
        for o in prog.outputs:
            print(f"output {o.name}: {o.shape} at element {o.start} of the output tensor")
        for i, d in enumerate(prog.instructions):
            print(f"{i:4d} {d.op.name if isinstance(d.op, Opcode) else d.opcode:<15} {str(d.in_shape):>16} -> "
                  f"{str(d.out_shape):<16} {d.name}")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
