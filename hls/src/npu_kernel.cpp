/* Brainwave NPU kernel (Vitis HLS C++; also compiled by g++ for C-simulation and libnpu.so).
 *
 * Interprets a program (docs/isa.md) from external memory. The numerics follow docs/numerics.md
 * to the letter, with the arithmetic done the way hardware does it:
 *   - block quantization works on the float32 bit patterns (integer max, exponent from the bits, integer
 *     round-half-to-even shift), which equals x / 2^k rounded to nearest even and saturated;
 *   - the MAC array multiplies mantissas (up to 12 x 16 bits, bfp20) 16 lanes wide into an exact integer sum,
 *     converts it to float32 (exact below 2^24, else rounded to nearest even: bfp20 only), scales it by a
 *     power of two (exact) and adds it to a float32 accumulator;
 *   - every float32 addition happens in the order the spec fixes. Output channels are interleaved
 *     (NPU_OLANES accumulators) so the adder recurrence does not limit the pipeline, but each accumulator
 *     still sees taps row-major, then chunks by ascending channel.
 * Build the C model with -O2 -ffp-contract=off and without -ffast-math: no FMA contraction, no reassociation.
 */
#include <string.h>

#include "npu_kernel.h"

namespace {

static_assert(NPU_OLANES == 8, "the DEPENDENCE pragma in OUT_LANES spells the lane count out");

typedef uint32_t u32;
typedef uint64_t u64;

inline u32 f2u(float f) {
    u32 u;
    memcpy(&u, &f, sizeof u);
    return u;
}

inline float u2f(u32 u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 2^k as a float32 for k in [-126, 127] (built from the bits: exact). */
inline float pow2f(int k) { return u2f((u32)(k + 127) << 23); }

/* Every value an instruction writes goes through here: a NaN is stored as the canonical quiet NaN 0x7FC00000
 * (docs/numerics.md "Edge cases"), because which NaN payload an IEEE add returns depends on operand order, which neither
 * C++ nor numpy pins down. */
inline float canon(float y) {
#pragma HLS INLINE
    return y != y ? u2f(0x7FC00000u) : y;
}

inline float activate(float y, u32 act) {
#pragma HLS INLINE
    if (act == BW_ACT_NONE) return y;
    float r = y > 0.0f ? y : 0.0f;
    if (act == BW_ACT_RELU6) r = r < 6.0f ? r : 6.0f;
    return r;
}

/* float32 read from the weights blob (little-endian, 4-byte aligned). */
inline float load_f32(const uint8_t *weights, u32 byte_offset) {
#pragma HLS INLINE
    u32 u = (u32)weights[byte_offset] | ((u32)weights[byte_offset + 1] << 8) |
            ((u32)weights[byte_offset + 2] << 16) | ((u32)weights[byte_offset + 3] << 24);
    return u2f(u);
}

/* Activation magnitude bits M_a, weight magnitude bits M_w and packed bytes per weight block of a precision code
 * (validated before use). */
inline int mantissa_bits(u32 prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_MBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_MBITS_BFP20 : BW_MBITS_BFP16);
}

inline int weight_mantissa_bits(u32 prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_WBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_WBITS_BFP20 : BW_WBITS_BFP16);
}

inline u32 block_bytes(u32 prec) {
#pragma HLS INLINE
    return prec == BW_PREC_BFP12 ? BW_BLOCK_BYTES_BFP12
                                 : (prec == BW_PREC_BFP20 ? BW_BLOCK_BYTES_BFP20 : BW_BLOCK_BYTES_BFP16);
}

/* Quantizes one activation block x[0..15] (docs/numerics.md "Quantizing a block"). mbits = magnitude bits M.
 * Writes the mantissas, returns the shared exponent E. */
int quantize_block(const float x[BW_BLOCK], int mbits, int16_t m[BW_BLOCK]) {
#pragma HLS INLINE
    u32 mag[BW_BLOCK];
    u32 neg[BW_BLOCK];
#pragma HLS ARRAY_PARTITION variable = mag complete
#pragma HLS ARRAY_PARTITION variable = neg complete
    u32 amax = 0;
    for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
        u32 u = f2u(x[i]);
        u32 a = u & 0x7FFFFFFFu;
        if (a > 0x7F800000u) a = 0;                  /* NaN -> 0 */
        else if (a == 0x7F800000u) a = 0x7F7FFFFFu;  /* +-Inf -> +-FLT_MAX */
        mag[i] = a;
        neg[i] = u >> 31;
        amax = a > amax ? a : amax;  /* |x| bit patterns order like the values */
    }
    if (amax == 0) {
        for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
            m[i] = 0;
        }
        return BW_EXP_MIN;
    }
    int e;
    u32 be = amax >> 23;
    if (be != 0) {
        e = (int)be - 127;
    } else {  /* subnormal: its true exponent is that of the leading fraction bit */
        int msb = 0;
        for (int b = 22; b >= 0; b--) {
#pragma HLS UNROLL
            if (msb == 0 && ((amax >> b) & 1u)) msb = b;
        }
        e = msb - 149;
    }
    int E = e < BW_EXP_MIN ? BW_EXP_MIN : (e > BW_EXP_MAX ? BW_EXP_MAX : e);
    int k = E - (mbits - 1); /* step = 2^k */
    u32 lim = (1u << mbits) - 1u;
    for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
        u32 a = mag[i];
        u32 bexp = a >> 23;
        u32 mant = bexp ? ((a & 0x7FFFFFu) | 0x800000u) : (a & 0x7FFFFFu);
        int ex = bexp ? (int)bexp - 150 : -149; /* |x| = mant * 2^ex */
        int sh = k - ex;                        /* q = |x| / step = mant * 2^-sh */
        u32 r;
        if (mant == 0) {
            r = 0;
        } else if (sh <= 0) {
            r = (-sh >= 8) ? lim : (mant << (-sh));
        } else if (sh >= 25) {
            r = 0; /* mant < 2^24 <= 2^(sh-1): q < 0.5 */
        } else {
            u32 q = mant >> sh;
            u32 rem = mant & ((1u << sh) - 1u);
            u32 half = 1u << (sh - 1);
            if (rem > half || (rem == half && (q & 1u))) q++; /* round half to even */
            r = q;
        }
        if (r > lim) r = lim;
        m[i] = (int16_t)(neg[i] ? -(int)r : (int)r);
    }
    return E;
}

/* Mantissa of lane `l` of the packed weight block at `src` (docs/isa.md "Weights blob"): bfp16 int8 lanes,
 * bfp20 int16 little-endian lanes, bfp12 4-bit two's complement with lane 2j in the low nibble of byte j. */
inline int weight_lane(const uint8_t *src, u32 prec, int l) {
#pragma HLS INLINE
    if (prec == BW_PREC_BFP16) return (int8_t)src[l];
    if (prec == BW_PREC_BFP20) return (int16_t)(uint16_t)((u32)src[2 * l] | ((u32)src[2 * l + 1] << 8));
    u32 byte = src[l >> 1];
    u32 nib = (l & 1) ? (byte >> 4) : (byte & 0xFu);
    return (int)(nib ^ 8u) - 8; /* sign-extend 4 bits */
}

/* Reads weight block `blk` (mantissas and exponent) from the weights blob. */
int load_weight_block(const uint8_t *weights, u32 mant_off, u32 exp_off, u32 blk, u32 prec, int16_t wm[BW_BLOCK]) {
#pragma HLS INLINE
    const uint8_t *src = weights + mant_off + (u64)blk * block_bytes(prec);
    for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
        wm[i] = (int16_t)weight_lane(src, prec, i);
    }
    return (int8_t)weights[exp_off + blk];
}

/* The 16-lane MAC: exact integer sum of activation x weight mantissas for one block pair
 * (|sum| <= 16 * 2047 * 32767 < 2^31 in bfp20, so an int holds it). */
int mac16(const uint8_t *wsrc, u32 prec, const int16_t a[BW_BLOCK]) {
#pragma HLS INLINE
    int isum = 0;
MAC16:
    for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
        isum += (int)a[l] * weight_lane(wsrc, prec, l);
    }
    return isum;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Instruction fields */

struct Insn {
    u32 op, act, prec;
    u32 in_off, in_h, in_w, in_c;
    u32 out_off, out_h, out_w, out_c;
    u32 kh, kw, sh, sw, pt, pl, pb, pr;
    u32 groups, mant_off, exp_off, bias_off, has_res, res_off, in2_off;
};

void decode(const u32 w[BW_INSN_WORDS], Insn &d) {
#pragma HLS INLINE
    d.op = w[BW_I_OPCODE];
    d.act = w[BW_I_ACTIVATION];
    d.prec = w[BW_I_PRECISION];
    d.in_off = w[BW_I_IN_OFFSET];
    d.in_h = w[BW_I_IN_H];
    d.in_w = w[BW_I_IN_W];
    d.in_c = w[BW_I_IN_C];
    d.out_off = w[BW_I_OUT_OFFSET];
    d.out_h = w[BW_I_OUT_H];
    d.out_w = w[BW_I_OUT_W];
    d.out_c = w[BW_I_OUT_C];
    d.kh = w[BW_I_KERNEL_H];
    d.kw = w[BW_I_KERNEL_W];
    d.sh = w[BW_I_STRIDE_H];
    d.sw = w[BW_I_STRIDE_W];
    d.pt = w[BW_I_PAD_TOP];
    d.pl = w[BW_I_PAD_LEFT];
    d.pb = w[BW_I_PAD_BOTTOM];
    d.pr = w[BW_I_PAD_RIGHT];
    d.groups = w[BW_I_GROUPS];
    d.mant_off = w[BW_I_WEIGHT_MANT_OFFSET];
    d.exp_off = w[BW_I_WEIGHT_EXP_OFFSET];
    d.bias_off = w[BW_I_BIAS_OFFSET];
    d.has_res = w[BW_I_HAS_RESIDUAL];
    d.res_off = w[BW_I_RESIDUAL_OFFSET];
    d.in2_off = w[BW_I_IN2_OFFSET];
}

inline bool is_depthwise(const Insn &d) { return d.groups == d.in_c && d.out_c == d.in_c; }
inline u32 ceil16(u32 c) { return (c + BW_BLOCK - 1) / BW_BLOCK; }

/* [offset, offset + h*w*c) inside [0, limit) */
bool tensor_fits(u32 offset, u32 h, u32 w, u32 c, u32 limit) {
    u64 n = (u64)h * (u64)w;
    if (n > 0xFFFFFFFFull) return false;
    n *= (u64)c;
    return (u64)offset + n <= (u64)limit;
}

bool bytes_fit(u32 offset, u64 n, u32 limit) { return n <= 0xFFFFFFFFFFull && (u64)offset + n <= (u64)limit; }

/* Number of weight blocks a CONV2D reads (docs/isa.md "Weights blob"). */
u64 weight_blocks(const Insn &d) {
    u64 taps = (u64)d.kh * d.kw;
    return is_depthwise(d) ? taps * ceil16(d.in_c) : (u64)d.out_c * taps * ceil16(d.in_c / d.groups);
}

/* Weight exponents outside [BW_EXP_MIN, BW_EXP_MAX] would take the MAC scale 2^(Ea + Ew - mshift) out of float32's
 * normal range (pow2f needs [-126, 127]); such a program is refused. Runs after validate(): the bytes are in bounds. */
u32 check_weight_exponents(const Insn &d, const uint8_t *weights) {
    if (d.op != BW_OP_CONV2D) return NPU_STATUS_OK;
    const u64 n = weight_blocks(d);
EXPONENTS:
    for (u64 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 65536 avg = 4096
#pragma HLS PIPELINE II = 1
        int e = (int8_t)weights[d.exp_off + i];
        if (e < BW_EXP_MIN || e > BW_EXP_MAX) return NPU_STATUS_BAD_FIELD;
    }
    return NPU_STATUS_OK;
}

/* Checks one instruction before anything runs: a program the kernel cannot execute safely is rejected
 * as a whole and the arena is left untouched. */
u32 validate(const Insn &d, u32 arena_words, u32 weights_bytes) {
    switch (d.op) {
    case BW_OP_CONV2D:
    case BW_OP_ADD:
    case BW_OP_MAXPOOL:
    case BW_OP_AVGPOOL:
    case BW_OP_GLOBAL_AVGPOOL:
    case BW_OP_ACTIVATION:
    case BW_OP_PAD:
        break;
    default:
        return NPU_STATUS_BAD_OPCODE;
    }
    if (d.act > BW_ACT_RELU6) return NPU_STATUS_BAD_FIELD;
    if (d.op == BW_OP_CONV2D) {
        if (d.prec != BW_PREC_BFP16 && d.prec != BW_PREC_BFP12 && d.prec != BW_PREC_BFP20) return NPU_STATUS_BAD_FIELD;
        if (d.groups == 0 || d.in_c % d.groups != 0 || d.out_c % d.groups != 0) return NPU_STATUS_BAD_FIELD;
        if (d.in_c == 0 || d.out_c == 0 || d.in_c > NPU_MAX_CHANNELS || d.out_c > NPU_MAX_CHANNELS)
            return NPU_STATUS_BAD_FIELD;
        if (d.kh == 0 || d.kw == 0 || d.sh == 0 || d.sw == 0 || d.has_res > 1) return NPU_STATUS_BAD_FIELD;
        if ((d.mant_off & 15u) != 0 || (d.bias_off & 3u) != 0) return NPU_STATUS_BAD_FIELD;
    }
    if (d.op == BW_OP_MAXPOOL || d.op == BW_OP_AVGPOOL) {
        if (d.kh == 0 || d.kw == 0 || d.sh == 0 || d.sw == 0 || d.out_c != d.in_c) return NPU_STATUS_BAD_FIELD;
    }
    if (d.op == BW_OP_GLOBAL_AVGPOOL) {
        if (d.out_h != 1 || d.out_w != 1 || d.out_c != d.in_c || d.in_c > NPU_MAX_CHANNELS) return NPU_STATUS_BAD_FIELD;
    }
    if (d.op == BW_OP_ADD || d.op == BW_OP_ACTIVATION) {
        if (d.out_h != d.in_h || d.out_w != d.in_w || d.out_c != d.in_c) return NPU_STATUS_BAD_FIELD;
    }
    if (d.op == BW_OP_PAD) {
        if (d.out_c != d.in_c || (u64)d.out_h != (u64)d.in_h + d.pt + d.pb ||
            (u64)d.out_w != (u64)d.in_w + d.pl + d.pr)
            return NPU_STATUS_BAD_FIELD;
    }
    /* memory bounds */
    if (!tensor_fits(d.in_off, d.in_h, d.in_w, d.in_c, arena_words)) return NPU_STATUS_OUT_OF_BOUNDS;
    if (!tensor_fits(d.out_off, d.out_h, d.out_w, d.out_c, arena_words)) return NPU_STATUS_OUT_OF_BOUNDS;
    if (d.op == BW_OP_ADD && !tensor_fits(d.in2_off, d.in_h, d.in_w, d.in_c, arena_words))
        return NPU_STATUS_OUT_OF_BOUNDS;
    if (d.op == BW_OP_CONV2D) {
        if (d.has_res && !tensor_fits(d.res_off, d.out_h, d.out_w, d.out_c, arena_words))
            return NPU_STATUS_OUT_OF_BOUNDS;
        u64 taps = (u64)d.kh * d.kw;
        u64 nblocks = weight_blocks(d);
        u64 bpb = block_bytes(d.prec);
        if (taps > 0xFFFFFFFFull || !bytes_fit(d.mant_off, nblocks * bpb, weights_bytes) ||
            !bytes_fit(d.exp_off, nblocks, weights_bytes) || !bytes_fit(d.bias_off, 4ull * d.out_c, weights_bytes))
            return NPU_STATUS_OUT_OF_BOUNDS;
    }
    return NPU_STATUS_OK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* CONV2D (also dense, depthwise and grouped) with bias, optional residual, activation */

void op_conv2d(const Insn &d, const uint8_t *weights, float *arena) {
    const int mbits = mantissa_bits(d.prec);
    const int mshift = (mbits - 1) + (weight_mantissa_bits(d.prec) - 1); /* scale 2^(Ea + Ew - mshift) */
    const u32 nb_in = ceil16(d.in_c);
    const u32 cg = d.in_c / d.groups;     /* input channels per group */
    const u32 opg = d.out_c / d.groups;   /* output channels per group */
    const bool dw = is_depthwise(d);
    const bool aligned = d.groups == 1 || cg % BW_BLOCK == 0; /* every chunk is one whole block pair */
    const u32 nbw = ceil16(cg);           /* weight blocks per (output channel, tap) */

    int16_t qa[NPU_MAX_BLOCKS][BW_BLOCK]; /* quantized input pixel: mantissas */
    int8_t ea[NPU_MAX_BLOCKS];           /* and block exponents */
    float acc[NPU_MAX_CHANNELS];         /* one float32 accumulator per output channel */
#pragma HLS ARRAY_PARTITION variable = qa complete dim = 2
#pragma HLS ARRAY_PARTITION variable = acc cyclic factor = 16

PIXEL_Y:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
    PIXEL_X:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
        ACC_CLEAR:
            for (u32 o = 0; o < d.out_c; o++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 256
#pragma HLS PIPELINE II = 1
                acc[o] = 0.0f;
            }
        TAP_Y:
            for (u32 ky = 0; ky < d.kh; ky++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
                long iy = (long)oy * d.sh - (long)d.pt + ky;
                if (iy < 0 || iy >= (long)d.in_h) continue;
            TAP_X:
                for (u32 kx = 0; kx < d.kw; kx++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
                    long ix = (long)ox * d.sw - (long)d.pl + kx;
                    if (ix < 0 || ix >= (long)d.in_w) continue;
                    const float *px = arena + d.in_off + ((u64)iy * d.in_w + (u64)ix) * d.in_c;
                QUANT:
                    for (u32 b = 0; b < nb_in; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 16
#pragma HLS PIPELINE II = 1
                        float x[BW_BLOCK];
                        for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
                            u32 c = b * BW_BLOCK + l;
                            x[l] = c < d.in_c ? px[c] : 0.0f;
                        }
                        ea[b] = (int8_t)quantize_block(x, mbits, qa[b]);
                    }
                    const u32 tap = ky * d.kw + kx;
                    if (dw) {
                        /* depthwise: one chunk per channel, weights per tap in blocks of 16 channels */
                    DW_BLOCKS:
                        for (u32 b = 0; b < nb_in; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 80 avg = 16
#pragma HLS PIPELINE II = 1
                            int16_t wm[BW_BLOCK];
                            int ew = load_weight_block(weights, d.mant_off, d.exp_off, tap * nb_in + b, d.prec, wm);
                            float scale = pow2f(ea[b] + ew - mshift);
                        DW_LANES:
                            for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
                                u32 o = b * BW_BLOCK + l;
                                if (o < d.out_c) {
                                    int isum = (int)qa[b][l] * (int)wm[l];
                                    acc[o] = acc[o] + (float)isum * scale;
                                }
                            }
                        }
                    } else if (aligned) {
                        /* dense / grouped with 16-aligned groups: every chunk is a full block pair */
                    OUT_TILES:
                        for (u32 o0 = 0; o0 < d.out_c; o0 += NPU_OLANES) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 32
                        W_BLOCKS:
                            for (u32 wb = 0; wb < nbw; wb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 16
                            OUT_LANES:
                                for (u32 p = 0; p < NPU_OLANES; p++) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter distance = 8 true
                                    u32 o = o0 + p;
                                    if (o < d.out_c) {
                                        u32 ab = (o / opg) * cg / BW_BLOCK + wb;
                                        u32 blk = (o * (d.kh * d.kw) + tap) * nbw + wb;
                                        int ew = (int8_t)weights[d.exp_off + blk];
                                        int isum = mac16(weights + d.mant_off + (u64)blk * block_bytes(d.prec), d.prec,
                                                         qa[ab]);
                                        acc[o] = acc[o] + (float)isum * pow2f(ea[ab] + ew - mshift);
                                    }
                                }
                            }
                        }
                    } else {
                        /* grouped, groups not 16-aligned: chunks cut at activation and weight block edges */
                    OUT_GENERIC:
                        for (u32 o = 0; o < d.out_c; o++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 512 avg = 64
                            const u32 base = (o / opg) * cg;
                            const u32 end = base + cg;
                            const u32 blk0 = (o * (d.kh * d.kw) + tap) * nbw;
                            int16_t wm[BW_BLOCK];
                            int ew = 0;
                            u32 loaded = 0xFFFFFFFFu;
                        CHUNKS:
                            for (u32 c = base; c < end;) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 64 avg = 4
                                u32 ab = c / BW_BLOCK, al = c % BW_BLOCK;
                                u32 wb = (c - base) / BW_BLOCK, wl = (c - base) % BW_BLOCK;
                                u32 len = BW_BLOCK - al;
                                if (BW_BLOCK - wl < len) len = BW_BLOCK - wl;
                                if (end - c < len) len = end - c;
                                if (wb != loaded) {
                                    ew = load_weight_block(weights, d.mant_off, d.exp_off, blk0 + wb, d.prec, wm);
                                    loaded = wb;
                                }
                                int isum = 0;
                                for (u32 i = 0; i < len; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 16
                                    isum += (int)qa[ab][al + i] * (int)wm[wl + i];
                                }
                                acc[o] = acc[o] + (float)isum * pow2f(ea[ab] + ew - mshift);
                                c += len;
                            }
                        }
                    }
                }
            }
            /* vector unit */
            const u64 pix = ((u64)oy * d.out_w + ox) * d.out_c;
        VECTOR:
            for (u32 o = 0; o < d.out_c; o++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 256
#pragma HLS PIPELINE II = 1
                float y = acc[o] + load_f32(weights, d.bias_off + 4u * o);
                if (d.has_res) y = y + arena[d.res_off + pix + o];
                arena[d.out_off + pix + o] = canon(activate(y, d.act));
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Vector-unit instructions */

void op_add(const Insn &d, float *arena) {
    const u64 n = (u64)d.in_h * d.in_w * d.in_c;
ADD:
    for (u64 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 802816 avg = 50176
#pragma HLS PIPELINE II = 1
        float y = arena[d.in_off + i] + arena[d.in2_off + i];
        arena[d.out_off + i] = canon(activate(y, d.act));
    }
}

void op_activation(const Insn &d, float *arena) {
    const u64 n = (u64)d.in_h * d.in_w * d.in_c;
ACT:
    for (u64 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 802816 avg = 50176
#pragma HLS PIPELINE II = 1
        arena[d.out_off + i] = canon(activate(arena[d.in_off + i], d.act));
    }
}

void op_pad(const Insn &d, float *arena) {
PAD_Y:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 230 avg = 58
    PAD_X:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 230 avg = 58
            long iy = (long)oy - (long)d.pt, ix = (long)ox - (long)d.pl;
            bool inside = iy >= 0 && iy < (long)d.in_h && ix >= 0 && ix < (long)d.in_w;
            const u64 dst = d.out_off + ((u64)oy * d.out_w + ox) * d.out_c;
            const u64 src = inside ? d.in_off + ((u64)iy * d.in_w + (u64)ix) * d.in_c : 0;
        PAD_C:
            for (u32 c = 0; c < d.out_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = 2048 avg = 64
#pragma HLS PIPELINE II = 1
                arena[dst + c] = inside ? canon(arena[src + c]) : 0.0f;
            }
        }
    }
}

/* MAXPOOL and AVGPOOL; padding cells are skipped. A window without any valid cell writes +0.0f. */
void op_pool(const Insn &d, float *arena) {
    const bool is_max = d.op == BW_OP_MAXPOOL;
POOL_Y:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
    POOL_X:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
            const u64 dst = d.out_off + ((u64)oy * d.out_w + ox) * d.out_c;
        POOL_C:
            for (u32 c = 0; c < d.out_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = 2048 avg = 64
                float m = 0.0f, sum = 0.0f;
                u32 count = 0;
            WIN_Y:
                for (u32 ky = 0; ky < d.kh; ky++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
                    long iy = (long)oy * d.sh - (long)d.pt + ky;
                    if (iy < 0 || iy >= (long)d.in_h) continue;
                WIN_X:
                    for (u32 kx = 0; kx < d.kw; kx++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
                        long ix = (long)ox * d.sw - (long)d.pl + kx;
                        if (ix < 0 || ix >= (long)d.in_w) continue;
                        float v = arena[d.in_off + ((u64)iy * d.in_w + (u64)ix) * d.in_c + c];
                        if (is_max) {
                            if (count == 0 || v > m) m = v;
                        } else {
                            sum = sum + v;
                        }
                        count++;
                    }
                }
                float y;
                if (count == 0) y = 0.0f;
                else if (is_max) y = m;
                else y = sum / (float)count;
                arena[dst + c] = canon(y);
            }
        }
    }
}

void op_global_avgpool(const Insn &d, float *arena) {
    float sum[NPU_MAX_CHANNELS];
#pragma HLS ARRAY_PARTITION variable = sum cyclic factor = 16
GAP_CLEAR:
    for (u32 c = 0; c < d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 1024
#pragma HLS PIPELINE II = 1
        sum[c] = 0.0f;
    }
    const u64 npix = (u64)d.in_h * d.in_w;
GAP_PIX:
    for (u64 p = 0; p < npix; p++) { /* pixels row-major: y then x */
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 196 avg = 49
    GAP_C:
        for (u32 c = 0; c < d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 1024
#pragma HLS PIPELINE II = 1
            sum[c] = sum[c] + arena[d.in_off + p * d.in_c + c];
        }
    }
    const float count = (float)(d.in_h * d.in_w);
GAP_OUT:
    for (u32 c = 0; c < d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 1024
#pragma HLS PIPELINE II = 1
        arena[d.out_off + c] = canon(sum[c] / count);
    }
}

void load_insn(const u32 *program, u32 index, u32 w[BW_INSN_WORDS]) {
LOAD_INSN:
    for (u32 i = 0; i < BW_INSN_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        w[i] = program[BW_HEADER_WORDS + (u64)index * BW_INSN_WORDS + i];
    }
}

} // namespace

extern "C" void npu_run(const uint32_t *program, const uint8_t *weights, float *arena, uint32_t *status) {
/* Depths only size the C/RTL co-simulation buffers (they match the smoke vectors); they do not limit the IP. */
#pragma HLS INTERFACE mode = m_axi port = program offset = slave bundle = gmem0 depth = 4096 max_read_burst_length = 32
#pragma HLS INTERFACE mode = m_axi port = weights offset = slave bundle = gmem1 depth = 65536 max_read_burst_length = 64 max_widen_bitwidth = 128
#pragma HLS INTERFACE mode = m_axi port = arena offset = slave bundle = gmem2 depth = 65536 max_widen_bitwidth = 512
#pragma HLS INTERFACE mode = m_axi port = status offset = slave bundle = gmem0 depth = 1
#pragma HLS INTERFACE mode = s_axilite port = program bundle = control
#pragma HLS INTERFACE mode = s_axilite port = weights bundle = control
#pragma HLS INTERFACE mode = s_axilite port = arena bundle = control
#pragma HLS INTERFACE mode = s_axilite port = status bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return

    u32 header[BW_HEADER_WORDS];
LOAD_HEADER:
    for (u32 i = 0; i < BW_HEADER_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        header[i] = program[i];
    }
    if (header[BW_H_MAGIC] != BW_MAGIC) {
        *status = NPU_STATUS_BAD_MAGIC;
        return;
    }
    if (header[BW_H_ISA_VERSION] != BW_ISA_VERSION) {
        *status = NPU_STATUS_BAD_VERSION;
        return;
    }
    if (header[BW_H_INSN_WORDS] != BW_INSN_WORDS) {
        *status = NPU_STATUS_BAD_FIELD;
        return;
    }
    const u32 n = header[BW_H_NUM_INSTRUCTIONS];
    const u32 arena_words = header[BW_H_ARENA_WORDS];
    const u32 weights_bytes = header[BW_H_WEIGHTS_BYTES];
    if (!tensor_fits(header[BW_H_INPUT_OFFSET], header[BW_H_INPUT_H], header[BW_H_INPUT_W], header[BW_H_INPUT_C],
                     arena_words) ||
        !tensor_fits(header[BW_H_OUTPUT_OFFSET], header[BW_H_OUTPUT_H], header[BW_H_OUTPUT_W],
                     header[BW_H_OUTPUT_C], arena_words)) {
        *status = NPU_STATUS_OUT_OF_BOUNDS;
        return;
    }

    u32 w[BW_INSN_WORDS];
    Insn d;
VALIDATE:
    for (u32 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 64
        load_insn(program, i, w);
        decode(w, d);
        u32 s = validate(d, arena_words, weights_bytes);
        if (s == NPU_STATUS_OK) s = check_weight_exponents(d, weights);
        if (s != NPU_STATUS_OK) {
            *status = s;
            return;
        }
    }
EXECUTE:
    for (u32 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 64
        load_insn(program, i, w);
        decode(w, d);
        switch (d.op) {
        case BW_OP_CONV2D: op_conv2d(d, weights, arena); break;
        case BW_OP_ADD: op_add(d, arena); break;
        case BW_OP_MAXPOOL:
        case BW_OP_AVGPOOL: op_pool(d, arena); break;
        case BW_OP_GLOBAL_AVGPOOL: op_global_avgpool(d, arena); break;
        case BW_OP_ACTIVATION: op_activation(d, arena); break;
        default: op_pad(d, arena); break;
        }
    }
    *status = NPU_STATUS_OK;
}
