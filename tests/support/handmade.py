"""Hand-built NPU programs, written straight from docs/isa.md.

Independent of brainwave.npu.compiler on purpose: these check the kernel against the spec text itself
(field positions, weight packing, the quantizer), so a misreading shared by the compiler and the kernel
would still show up here.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = 0x504E5742
ISA_VERSION = 3
MBITS = {1: 7, 2: 3, 3: 11}  # precision code -> activation magnitude bits M: bfp16, bfp12, bfp20
WBITS = {1: 7, 2: 3, 3: 15}  # precision code -> weight magnitude bits (bfp20 weights fill the int16 lane)
FLT_MAX = np.finfo(np.float32).max

HEADER_FIELDS = (
    "magic isa_version num_instructions arena_words weights_bytes input_offset input_h input_w input_c "
    "output_offset output_h output_w output_c insn_words"
).split()
INSN_FIELDS = (
    "opcode activation precision in_offset in_h in_w in_c out_offset out_h out_w out_c kernel_h kernel_w "
    "stride_h stride_w pad_top pad_left pad_bottom pad_right groups weight_mant_offset weight_exp_offset "
    "bias_offset has_residual residual_offset in2_offset"
).split()
OP = {"conv2d": 1, "add": 2, "maxpool": 3, "avgpool": 4, "global_avgpool": 5, "activation": 6, "pad": 7, "concat": 8}


def pack_program(header: dict, insns: list[dict]) -> bytes:
    words = [0] * 16
    h = dict(header, magic=header.get("magic", MAGIC), isa_version=header.get("isa_version", ISA_VERSION),
             num_instructions=len(insns), insn_words=header.get("insn_words", 32))
    for k, v in h.items():
        words[HEADER_FIELDS.index(k)] = v
    for insn in insns:
        w = [0] * 32
        for k, v in insn.items():
            w[INSN_FIELDS.index(k)] = OP[v] if k == "opcode" and isinstance(v, str) else v
        words += w
    return struct.pack(f"<{len(words)}I", *words)


def ref_quantize(x: np.ndarray, mbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Spec 1 quantizer for blocks along the last axis (length 16), in float64: (mantissas, exponents)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    x = np.where(np.isnan(x), 0.0, x)
    x = np.clip(x, -float(FLT_MAX), float(FLT_MAX))
    amax = np.max(np.abs(x), axis=-1)
    _, ex = np.frexp(amax)  # amax = f * 2^ex, f in [0.5, 1): floor(log2(amax)) = ex - 1
    E = np.clip(ex - 1, -50, 50)
    E = np.where(amax == 0, -50, E)
    step = np.ldexp(1.0, E - (mbits - 1))
    lim = 2**mbits - 1
    m = np.clip(np.rint(x / step[..., None]), -lim, lim).astype(np.int64)
    return m, E.astype(np.int64)


def pack_mantissas(m: np.ndarray, mbits: int) -> bytes:
    """Blocks (n, 16) of integer mantissas -> bfp16 int8 bytes, bfp20 int16 little-endian lanes or bfp12
    nibbles (2i low, 2i+1 high)."""
    m = np.asarray(m, dtype=np.int64).reshape(-1, 16)
    if mbits > 7:  # bfp20 weights
        return m.astype("<i2").tobytes()
    if mbits == 7:
        return m.astype(np.int8).tobytes()
    nib = (m & 0xF).astype(np.uint8)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8).tobytes()


def identity_conv_program(h: int, w: int, c: int, precision: int) -> tuple[bytes, bytes]:
    """1x1 conv whose weights pick channel o for output o: the output is the dequantized input."""
    mbits = WBITS[precision]
    nb = (c + 15) // 16
    m = np.zeros((c, nb, 16), dtype=np.int64)
    e = np.full((c, nb), -50, dtype=np.int64)
    for o in range(c):
        m[o, o // 16, o % 16] = 1 << (mbits - 1)  # the weight 1.0: E = 0, m = 2^(M-1)
        e[o, o // 16] = 0
    mant = pack_mantissas(m.reshape(-1, 16), mbits)
    exps = e.reshape(-1).astype(np.int8).tobytes()
    exp_off = len(mant)
    bias_off = (exp_off + len(exps) + 3) // 4 * 4
    weights = mant + exps + bytes(bias_off - exp_off - len(exps)) + bytes(4 * c)
    n = h * w * c
    insn = dict(opcode="conv2d", activation=0, precision=precision, in_offset=0, in_h=h, in_w=w, in_c=c,
                out_offset=n, out_h=h, out_w=w, out_c=c, kernel_h=1, kernel_w=1, stride_h=1, stride_w=1,
                groups=1, weight_mant_offset=0, weight_exp_offset=exp_off, bias_offset=bias_off)
    header = dict(arena_words=2 * n, weights_bytes=len(weights), input_offset=0, input_h=h, input_w=w,
                  input_c=c, output_offset=n, output_h=h, output_w=w, output_c=c)
    return pack_program(header, [insn]), weights


def ref_dequantize_pixels(x: np.ndarray, mbits: int) -> np.ndarray:
    """What identity_conv_program outputs: every pixel's channel blocks quantized and dequantized."""
    h, w, c = x.shape
    nb = (c + 15) // 16
    padded = np.zeros((h, w, nb * 16), dtype=np.float32)
    padded[..., :c] = x
    m, E = ref_quantize(padded.reshape(h, w, nb, 16), mbits)
    step = np.ldexp(1.0, E - (mbits - 1))
    deq = (m * step[..., None]).astype(np.float32).reshape(h, w, nb * 16)[..., :c]
    return deq + np.float32(0.0)  # -0.0 cannot come out of the MAC (acc starts at +0.0)


def smoke_program() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """A small multi-instruction program whose result is exact integer arithmetic, computed here by hand.

    input 4x4x20 integers -> PAD 1 -> CONV2D 3x3 (stride 1, 20->8, bfp16, relu, residual) -> MAXPOOL 2x2/2
    -> ADD with itself -> GLOBAL_AVGPOOL -> CONCAT with the max pool's first pixel -> output 1x1x16. Values stay small integers, so quantization and every
    float addition are exact and the expected output follows from integer math.
    """
    rng = np.random.default_rng(1234)
    H = W = 4
    C, O = 20, 8
    # inputs: every pixel block has amax 64..127 (E = 6, step 1), so quantization is exact
    x = rng.integers(-127, 128, size=(H, W, C)).astype(np.float32)
    x[..., 0] = 127.0
    x[..., 16] = 100.0  # second block (channels 16..19) also has E = 6
    # weights: integers in [-3, 3] with 3 present in every block -> E = 1, step 2^-5, m = 32 * w
    wts = rng.integers(-3, 4, size=(O, 3, 3, C)).astype(np.int64)
    wts[..., 0] = 3
    wts[..., 16] = -3
    bias = rng.integers(-50, 50, size=O).astype(np.float32)
    # padded weight blocks (o, ky, kx, block, lane)
    wb = np.zeros((O, 3, 3, 2, 16), dtype=np.int64)
    wb[..., 0, :] = wts[..., :16]
    wb[..., 1, :4] = wts[..., 16:]
    m = wb * 32
    e = np.ones((O, 3, 3, 2), dtype=np.int64)
    mant = pack_mantissas(m.reshape(-1, 16), 7)
    exps = e.reshape(-1).astype(np.int8).tobytes()
    exp_off = len(mant)
    bias_off = (exp_off + len(exps) + 15) // 16 * 16
    weights = mant + exps + bytes(bias_off - exp_off - len(exps)) + bias.tobytes()

    a_in = 0
    a_pad = a_in + H * W * C
    a_conv = a_pad + (H + 2) * (W + 2) * C
    a_res = a_conv + H * W * O  # residual: written by the host? no: made by an ACTIVATION copy of conv input
    a_pool = a_res + H * W * O
    a_add = a_pool + 2 * 2 * O
    a_gap = a_add + 2 * 2 * O
    a_out = a_gap + O
    arena_words = a_out + 2 * O
    insns = [
        dict(opcode="pad", in_offset=a_in, in_h=H, in_w=W, in_c=C, out_offset=a_pad, out_h=H + 2, out_w=W + 2,
             out_c=C, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1),
        # residual tensor: relu of the first 8 channels is not expressible; use ACTIVATION relu6 on a
        # 4x4x8 view that starts at the input (the first 128 input floats reinterpreted as 4x4x8)
        dict(opcode="activation", activation=2, in_offset=a_in, in_h=H, in_w=W, in_c=O, out_offset=a_res,
             out_h=H, out_w=W, out_c=O),
        dict(opcode="conv2d", activation=1, precision=1, in_offset=a_pad, in_h=H + 2, in_w=W + 2, in_c=C,
             out_offset=a_conv, out_h=H, out_w=W, out_c=O, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1,
             groups=1, weight_mant_offset=0, weight_exp_offset=exp_off, bias_offset=bias_off, has_residual=1,
             residual_offset=a_res),
        dict(opcode="maxpool", in_offset=a_conv, in_h=H, in_w=W, in_c=O, out_offset=a_pool, out_h=2, out_w=2,
             out_c=O, kernel_h=2, kernel_w=2, stride_h=2, stride_w=2),
        dict(opcode="add", in_offset=a_pool, in_h=2, in_w=2, in_c=O, out_offset=a_add, out_h=2, out_w=2, out_c=O,
             in2_offset=a_pool),
        dict(opcode="global_avgpool", in_offset=a_add, in_h=2, in_w=2, in_c=O, out_offset=a_gap, out_h=1, out_w=1,
             out_c=O),
        # the max pool's pixel (0, 0) read as a 1x1x8 tensor: its first 8 floats
        dict(opcode="concat", in_offset=a_gap, in_h=1, in_w=1, in_c=O, in2_offset=a_pool, out_offset=a_out, out_h=1,
             out_w=1, out_c=2 * O),
    ]
    header = dict(arena_words=arena_words, weights_bytes=len(weights), input_offset=a_in, input_h=H, input_w=W,
                  input_c=C, output_offset=a_out, output_h=1, output_w=1, output_c=2 * O)
    program = pack_program(header, insns)

    # expected, in exact integer arithmetic
    xi = x.astype(np.int64)
    xp = np.zeros((H + 2, W + 2, C), dtype=np.int64)
    xp[1:-1, 1:-1] = xi
    conv = np.zeros((H, W, O), dtype=np.int64)
    for y in range(H):
        for xx in range(W):
            conv[y, xx] = np.einsum("abc,oabc->o", xp[y : y + 3, xx : xx + 3], wts)
    res = np.clip(xi.reshape(-1)[: H * W * O].reshape(H, W, O), 0, 6)
    y = np.maximum(conv + bias.astype(np.int64) + res, 0)
    pool = y.reshape(2, 2, 2, 2, O).max(axis=(1, 3))
    add = 2 * pool
    gap = (add.sum(axis=(0, 1)).astype(np.float64) / 4.0).astype(np.float32)
    expected = np.concatenate([gap, pool[0, 0].astype(np.float32)]).reshape(1, 1, 2 * O)
    assert np.all(np.abs(add) < 2**22), "smoke values must stay exact in float32"
    return program, weights, x, expected


@dataclass(frozen=True)
class Mutation:
    """One change that makes smoke_program() a program the kernel refuses, and the status it must refuse it with
    (docs/isa.md "Status codes and validation"): a program word overwritten, or a weight block exponent of its
    CONV2D (instruction 2) set outside [-50, 50]."""

    name: str
    status: int
    word: int = -1
    value: int = 0
    exponent: int | None = None

    @property
    def header(self) -> bool:
        """Whether the change is to the magic or the version, which a host checks before any instruction."""
        return self.word in (0, 1)

    def apply(self, program: bytes, weights: bytes) -> tuple[bytes, bytes]:
        if self.exponent is not None:
            exp_off = struct.unpack_from("<I", program, 4 * insn_word(2, INSN_FIELDS.index("weight_exp_offset")))[0]
            blob = bytearray(weights)
            blob[exp_off + 5] = self.exponent & 0xFF
            return program, bytes(blob)
        blob = bytearray(program)
        struct.pack_into("<I", blob, 4 * self.word, self.value & 0xFFFFFFFF)
        return bytes(blob), weights


def insn_word(index: int, field: int) -> int:
    """Program word of field `field` (an index into INSN_FIELDS) of instruction `index`."""
    return 16 + 32 * index + field


def _field(index: int, name: str) -> int:
    return insn_word(index, INSN_FIELDS.index(name))


# smoke_program's instructions: 0 PAD, 1 ACTIVATION, 2 CONV2D (3x3, 20 -> 8, residual), 3 MAXPOOL, 4 ADD,
# 5 GLOBAL_AVGPOOL, 6 CONCAT
SMOKE_MUTATIONS = [
    Mutation("magic", 1, 0, 0x12345678),
    Mutation("isa_version 1", 2, 1, 1),  # ISA 1: before bfp20 and the exponent check
    Mutation("isa_version 2", 2, 1, 2),  # ISA 2: before CONCAT
    Mutation("isa_version 99", 2, 1, 99),
    Mutation("arena_words below the input", 4, HEADER_FIELDS.index("arena_words"), 10),
    Mutation("opcode 9", 3, _field(0, "opcode"), 9),
    Mutation("opcode 99 after a valid instruction", 3, _field(1, "opcode"), 99),
    Mutation("conv activation 3", 5, _field(2, "activation"), 3),
    Mutation("global pool activation 7", 5, _field(5, "activation"), 7),  # checked where it is unused too
    Mutation("conv precision 4", 5, _field(2, "precision"), 4),
    Mutation("conv groups 0", 5, _field(2, "groups"), 0),
    Mutation("conv groups 3 (not dividing 20)", 5, _field(2, "groups"), 3),
    Mutation("conv kernel_h 0", 5, _field(2, "kernel_h"), 0),
    Mutation("conv has_residual 2", 5, _field(2, "has_residual"), 2),
    Mutation("conv mantissas not 16-aligned", 5, _field(2, "weight_mant_offset"), 4),
    Mutation("conv bias not 4-aligned", 5, _field(2, "bias_offset"), 2),
    Mutation("conv bias past the weights", 4, _field(2, "bias_offset"), 1 << 20),
    Mutation("conv exponents past the weights", 4, _field(2, "weight_exp_offset"), 1 << 20),
    Mutation("conv residual past the arena", 4, _field(2, "residual_offset"), 1 << 30),
    Mutation("pool out_c != in_c", 5, _field(3, "out_c"), 9),
    Mutation("add output shape", 5, _field(4, "out_h"), 3),
    Mutation("add second operand past the arena", 4, _field(4, "in2_offset"), 1 << 30),
    Mutation("activation output past the arena", 4, _field(1, "out_offset"), 1 << 31),
    Mutation("global pool output not 1x1", 5, _field(5, "out_h"), 2),
    Mutation("pad output != input + pads", 5, _field(0, "out_h"), 5),
    Mutation("concat out_c not above in_c", 5, _field(6, "out_c"), 8),
    Mutation("concat output height != input height", 5, _field(6, "out_h"), 2),
    Mutation("concat second operand past the arena", 4, _field(6, "in2_offset"), 1 << 30),
    *(Mutation(f"weight exponent {e}", 5, exponent=e) for e in (51, -51, -128, 127)),
]


def write_vectors(directory, program: bytes, weights: bytes, x: np.ndarray, expected: np.ndarray) -> None:
    """The test bench's vector directory: program.bin, weights.bin, input.f32, expected.f32."""
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "program.bin").write_bytes(program)
    (d / "weights.bin").write_bytes(weights)
    (d / "input.f32").write_bytes(np.ascontiguousarray(x, dtype="<f4").tobytes())
    (d / "expected.f32").write_bytes(np.ascontiguousarray(expected, dtype="<f4").tobytes())


if __name__ == "__main__":  # regenerate hls/tb/vectors/smoke: python -m tests.support.handmade
    import sys
    from pathlib import Path

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "hls/tb/vectors/smoke"
    write_vectors(out, *smoke_program())
    print(f"wrote {out}")
