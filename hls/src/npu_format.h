/* The program format's facts (docs/isa.md) and the bit-level rules of docs/numerics.md that both C++ executors
 * need: the HLS kernel (npu_kernel.cpp: synthesis, C-sim, libnpu.so) and the native executor
 * (brainwave/npu/native/src). Written once here so the two cannot drift apart; the constants and the instruction
 * struct come from the generated npu_isa.h, and brainwave/npu/ops.py is the Python validator that must agree
 * (tests/npu/test_executors.py gives the shared list of broken programs to every executor).
 *
 * Vitis HLS C++14 and plain C++ alike: inline functions, no allocation, no library call but memcpy (a bit cast).
 * Loops carry the kernel's pragmas and labels (the native Makefile, like hls/Makefile, passes
 * -Wno-unknown-pragmas -Wno-unused-label); what the kernel calls inside II=1 loops is `#pragma HLS INLINE`.
 * Everything is `static inline`: internal linkage, so each of the native executor's SIMD translation units (built
 * with its own -m flags, see kernel_api.h) keeps its own copy and the linker never merges an AVX-512 one into
 * code that runs on any CPU.
 */
#ifndef BW_NPU_FORMAT_H
#define BW_NPU_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "npu_isa.h"

/* ---------------------------------------------------------------------------------------------------------- */
/* float32 bits (docs/numerics.md) */

#define BW_CANONICAL_NAN 0x7FC00000u /* how every NaN an instruction writes is stored ("Edge cases") */

static inline uint32_t bw_f2u(float f) {
#pragma HLS INLINE
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bw_u2f(uint32_t u) {
#pragma HLS INLINE
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 2^k as a float32, exact for k in [-126, 127] (built from the bits). */
static inline float bw_pow2f(int k) { return bw_u2f((uint32_t)(k + 127) << 23); }

/* The float32 stored little-endian at p (the biases in the weights blob). */
static inline float bw_f32_le(const uint8_t *p) {
#pragma HLS INLINE
    return bw_u2f((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

/* Every value an instruction writes goes through here: a NaN is stored as BW_CANONICAL_NAN. */
static inline float bw_canon(float y) {
#pragma HLS INLINE
    return y != y ? bw_u2f(BW_CANONICAL_NAN) : y;
}

/* The activation (docs/numerics.md "Vector unit"): ReLU is y > 0 ? y : +0.0 (NaN and -0.0 give +0.0); ReLU6 then
 * r < 6 ? r : 6. (The native executor's kernels.h has the same rule on SIMD vectors.) */
static inline float bw_activate(float y, uint32_t act) {
#pragma HLS INLINE
    if (act == BW_ACT_NONE) return y;
    float r = y > 0.0f ? y : 0.0f;
    if (act == BW_ACT_RELU6) r = r < 6.0f ? r : 6.0f;
    return r;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Precisions */

/* M_a: an activation block's magnitude bits */
static inline int bw_act_bits(uint32_t prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_MBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_MBITS_BFP20 : BW_MBITS_BFP16);
}

/* M_w: a weight block's magnitude bits */
static inline int bw_weight_bits(uint32_t prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_WBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_WBITS_BFP20 : BW_WBITS_BFP16);
}

/* (M_a - 1) + (M_w - 1): a chunk's partial is isum * 2^(E_a + E_w - bw_scale_shift) (docs/numerics.md "Dot
 * product") */
static inline int bw_scale_shift(uint32_t prec) {
#pragma HLS INLINE
    return (bw_act_bits(prec) - 1) + (bw_weight_bits(prec) - 1);
}

/* Bytes of one packed block of 16 weight mantissas */
static inline uint32_t bw_block_bytes(uint32_t prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_BLOCK_BYTES_BFP12
                                 : (prec == BW_PREC_BFP20 ? BW_BLOCK_BYTES_BFP20 : BW_BLOCK_BYTES_BFP16);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* CONV2D weights (docs/isa.md "Weights blob") */

/* 16-channel blocks covering c channels (c below 2^32 - 15: every caller's c is a validated channel count) */
static inline uint32_t bw_ceil16(uint32_t c) { return (c + BW_BLOCK - 1) / BW_BLOCK; }

/* groups = in_c = out_c: one block per (tap, channel block), lane = channel mod 16 */
static inline bool bw_is_depthwise(const bw_insn &d) { return d.groups == d.in_c && d.out_c == d.in_c; }

/* Weight blocks a CONV2D reads (its fields already checked: groups divides in_c). */
static inline uint64_t bw_weight_blocks(const bw_insn &d) {
    const uint64_t taps = (uint64_t)d.kh * d.kw;
    return bw_is_depthwise(d) ? taps * bw_ceil16(d.in_c) : (uint64_t)d.out_c * taps * bw_ceil16(d.in_c / d.groups);
}

/* Index of the weight block of output o, tap t = ky * kernel_w + kx and group-local channel block b (normal and
 * grouped convs). */
static inline uint64_t bw_dense_weight_block(const bw_insn &d, uint32_t o, uint32_t tap, uint32_t b) {
    return ((uint64_t)o * ((uint64_t)d.kh * d.kw) + tap) * bw_ceil16(d.in_c / d.groups) + b;
}

/* Index of the weight block of tap t and channel block b of a depthwise conv. */
static inline uint64_t bw_depthwise_weight_block(const bw_insn &d, uint32_t tap, uint32_t b) {
    return (uint64_t)tap * bw_ceil16(d.in_c) + b;
}

/* A 4-bit two's complement number (the low nibble of v), sign-extended: bfp12 mantissas. */
static inline int bw_nibble(uint32_t v) {
#pragma HLS INLINE
    return (int)((v & 0xFu) ^ 8u) - 8;
}

/* Mantissa of lane l of the packed weight block at `block`: bfp16 int8 lanes, bfp20 int16 little-endian lanes,
 * bfp12 4-bit two's complement with lane 2j in the low nibble of byte j. */
static inline int bw_weight_lane(const uint8_t *block, uint32_t prec, int l) {
#pragma HLS INLINE
    if (prec == BW_PREC_BFP16) return (int8_t)block[l];
    if (prec == BW_PREC_BFP20) return (int16_t)(uint16_t)((uint32_t)block[2 * l] | ((uint32_t)block[2 * l + 1] << 8));
    const uint32_t byte = block[l >> 1];
    return bw_nibble((l & 1) ? byte >> 4 : byte);
}

/* A chunk of a dot product (docs/numerics.md "Dot product"): the input channels [c, c + len) of a group whose
 * channels are [base, end), sharing activation block ab (its lanes al..) and the group-local weight block wb (its
 * lanes wl..). Chunks are cut where the global or the group-local channel index is a multiple of 16, so with
 * groups = 1 or a group size that is a multiple of 16 every chunk is one whole block pair. */
struct bw_chunk {
    uint32_t ab, al, wb, wl, len;
};

/* The chunk that starts at channel c. */
static inline bw_chunk bw_chunk_at(uint32_t c, uint32_t base, uint32_t end) {
#pragma HLS INLINE
    bw_chunk k;
    k.ab = c / BW_BLOCK;
    k.al = c % BW_BLOCK;
    k.wb = (c - base) / BW_BLOCK;
    k.wl = (c - base) % BW_BLOCK;
    k.len = BW_BLOCK - k.al;
    if (BW_BLOCK - k.wl < k.len) k.len = BW_BLOCK - k.wl;
    if (end - c < k.len) k.len = end - c;
    return k;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Reading the weights blob in 16-byte beats (the kernel's 128-bit port) */

#define BW_BEAT_BYTES 16

/* Byte a of a blob of `limit` bytes, or 0 past its end. */
static inline uint8_t bw_blob_byte(const uint8_t *blob, uint64_t a, uint32_t limit) {
#pragma HLS INLINE
    return a < limit ? blob[a] : 0;
}

/* The 16 bytes from a (16-byte aligned in every caller); a beat may overhang the blob's last byte, and the bytes
 * past it read as 0. */
static inline void bw_read_beat(const uint8_t *blob, uint64_t a, uint32_t limit, uint8_t out[BW_BEAT_BYTES]) {
#pragma HLS INLINE
    if (a + BW_BEAT_BYTES <= limit) {
        for (int i = 0; i < BW_BEAT_BYTES; i++) {
#pragma HLS UNROLL
            out[i] = blob[a + i];
        }
    } else {
        for (int i = 0; i < BW_BEAT_BYTES; i++) {
#pragma HLS UNROLL
            out[i] = bw_blob_byte(blob, a + i, limit);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Validation (docs/isa.md "Status codes and validation"): one order, one status per failure, for every executor.
 * The host-only framing checks (buffer lengths, which the kernel cannot see) stay with the native loader. */

/* [offset, offset + h*w*c) inside [0, limit). 64-bit sums, so nothing wraps; h*w must fit 32 bits. */
static inline bool bw_tensor_fits(uint32_t offset, uint32_t h, uint32_t w, uint32_t c, uint32_t limit) {
    uint64_t n = (uint64_t)h * (uint64_t)w;
    if (n > 0xFFFFFFFFull) return false;
    n *= (uint64_t)c;
    return (uint64_t)offset + n <= (uint64_t)limit;
}

/* [offset, offset + n) inside [0, limit) */
static inline bool bw_bytes_fit(uint32_t offset, uint64_t n, uint32_t limit) {
    return n <= 0xFFFFFFFFFFull && (uint64_t)offset + n <= (uint64_t)limit;
}

/* Step 1: magic (BAD_MAGIC), isa_version (BAD_VERSION), insn_words (BAD_FIELD). */
static inline uint32_t bw_check_header(const uint32_t h[BW_HEADER_WORDS]) {
    if (h[BW_H_MAGIC] != BW_MAGIC) return BW_STATUS_BAD_MAGIC;
    if (h[BW_H_ISA_VERSION] != BW_ISA_VERSION) return BW_STATUS_BAD_VERSION;
    if (h[BW_H_INSN_WORDS] != BW_INSN_WORDS) return BW_STATUS_BAD_FIELD;
    return BW_STATUS_OK;
}

/* Step 2: the header's input and output tensors inside the arena (OUT_OF_BOUNDS). */
static inline uint32_t bw_check_io(const uint32_t h[BW_HEADER_WORDS]) {
    const uint32_t arena_words = h[BW_H_ARENA_WORDS];
    if (!bw_tensor_fits(h[BW_H_INPUT_OFFSET], h[BW_H_INPUT_H], h[BW_H_INPUT_W], h[BW_H_INPUT_C], arena_words) ||
        !bw_tensor_fits(h[BW_H_OUTPUT_OFFSET], h[BW_H_OUTPUT_H], h[BW_H_OUTPUT_W], h[BW_H_OUTPUT_C], arena_words))
        return BW_STATUS_OUT_OF_BOUNDS;
    return BW_STATUS_OK;
}

static inline bool bw_opcode_known(uint32_t op) { return op >= BW_OP_CONV2D && op <= BW_OP_CONCAT; }

/* The field rules (docs/isa.md's table) of an instruction with a known opcode. */
static inline bool bw_fields_ok(const bw_insn &d) {
    if (d.act > BW_ACT_RELU6) return false; /* checked even where it is not used */
    switch (d.op) {
    case BW_OP_CONV2D:
        return (d.prec == BW_PREC_BFP16 || d.prec == BW_PREC_BFP12 || d.prec == BW_PREC_BFP20) && d.groups != 0 &&
               d.in_c % d.groups == 0 && d.out_c % d.groups == 0 && d.in_c != 0 && d.out_c != 0 &&
               d.in_c <= BW_MAX_CHANNELS && d.out_c <= BW_MAX_CHANNELS && d.kh != 0 && d.kw != 0 && d.sh != 0 &&
               d.sw != 0 && d.has_res <= 1 && (d.mant_off & 15u) == 0 && (d.bias_off & 3u) == 0;
    case BW_OP_MAXPOOL:
    case BW_OP_AVGPOOL:
        return d.kh != 0 && d.kw != 0 && d.sh != 0 && d.sw != 0 && d.out_c == d.in_c;
    case BW_OP_GLOBAL_AVGPOOL:
        return d.out_h == 1 && d.out_w == 1 && d.out_c == d.in_c && d.in_c <= BW_MAX_CHANNELS;
    case BW_OP_ADD:
    case BW_OP_ACTIVATION:
        return d.out_h == d.in_h && d.out_w == d.in_w && d.out_c == d.in_c;
    case BW_OP_CONCAT: /* the second operand brings out_c - in_c >= 1 channels */
        return d.out_h == d.in_h && d.out_w == d.in_w && d.out_c > d.in_c;
    default: /* PAD */
        return d.out_c == d.in_c && (uint64_t)d.out_h == (uint64_t)d.in_h + d.pt + d.pb &&
               (uint64_t)d.out_w == (uint64_t)d.in_w + d.pl + d.pr;
    }
}

/* The memory rules of an instruction whose fields are valid: its tensors inside the arena, a CONV2D's mantissas,
 * exponents and biases inside the weights blob. */
static inline bool bw_memory_ok(const bw_insn &d, uint32_t arena_words, uint32_t weights_bytes) {
    if (!bw_tensor_fits(d.in_off, d.in_h, d.in_w, d.in_c, arena_words)) return false;
    if (!bw_tensor_fits(d.out_off, d.out_h, d.out_w, d.out_c, arena_words)) return false;
    if (d.op == BW_OP_ADD && !bw_tensor_fits(d.in2_off, d.in_h, d.in_w, d.in_c, arena_words)) return false;
    if (d.op == BW_OP_CONCAT && !bw_tensor_fits(d.in2_off, d.in_h, d.in_w, d.out_c - d.in_c, arena_words)) return false;
    if (d.op != BW_OP_CONV2D) return true;
    if (d.has_res && !bw_tensor_fits(d.res_off, d.out_h, d.out_w, d.out_c, arena_words)) return false;
    const uint64_t blocks = bw_weight_blocks(d);
    return (uint64_t)d.kh * d.kw <= 0xFFFFFFFFull &&
           bw_bytes_fit(d.mant_off, blocks * bw_block_bytes(d.prec), weights_bytes) &&
           bw_bytes_fit(d.exp_off, blocks, weights_bytes) && bw_bytes_fit(d.bias_off, 4ull * d.out_c, weights_bytes);
}

/* Every weight block exponent of a CONV2D whose memory is valid lies in [BW_EXP_MIN, BW_EXP_MAX]: outside it the
 * chunk scale would leave float32's normal range (docs/numerics.md "Why the exponent is clamped"). 16 exponents
 * per aligned beat; on the kernel this is the per-call validation cost (docs/hardware.md "Validation at load"). */
static inline bool bw_exponents_ok(const bw_insn &d, const uint8_t *weights, uint32_t weights_bytes) {
    if (d.op != BW_OP_CONV2D) return true;
    const uint64_t first = d.exp_off, end = (uint64_t)d.exp_off + bw_weight_blocks(d);
    bool bad = false;
EXPONENTS:
    for (uint64_t a = first & ~(uint64_t)(BW_BEAT_BYTES - 1); a < end; a += BW_BEAT_BYTES) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4096 avg = 256
#pragma HLS PIPELINE II = 1
        uint8_t beat[BW_BEAT_BYTES];
#pragma HLS ARRAY_PARTITION variable = beat complete
        bw_read_beat(weights, a, weights_bytes, beat);
        for (int i = 0; i < BW_BEAT_BYTES; i++) {
#pragma HLS UNROLL
            const int e = (int8_t)beat[i];
            const bool in = a + i >= first && a + i < end;
            bad |= in && (e < BW_EXP_MIN || e > BW_EXP_MAX);
        }
    }
    return !bad;
}

/* Step 3 for one instruction: its opcode (BAD_OPCODE), then its fields (BAD_FIELD), then its memory
 * (OUT_OF_BOUNDS), then a CONV2D's weight exponents (BAD_FIELD). arena_words and weights_bytes are the header's;
 * `weights` must hold weights_bytes bytes. */
static inline uint32_t bw_check_insn(const bw_insn &d, const uint8_t *weights, uint32_t arena_words,
                                     uint32_t weights_bytes) {
    if (!bw_opcode_known(d.op)) return BW_STATUS_BAD_OPCODE;
    if (!bw_fields_ok(d)) return BW_STATUS_BAD_FIELD;
    if (!bw_memory_ok(d, arena_words, weights_bytes)) return BW_STATUS_OUT_OF_BOUNDS;
    if (!bw_exponents_ok(d, weights, weights_bytes)) return BW_STATUS_BAD_FIELD;
    return BW_STATUS_OK;
}

#endif
