/* Brainwave NPU kernel, architecture v2 (Vitis HLS C++; also compiled by g++ for C-simulation and libnpu.so).
 *
 * Interprets a program (docs/isa.md) from external memory with the arithmetic of docs/numerics.md, bit for bit.
 * The structure is the v2 architecture of docs/hardware.md; its build parameters (P, Kd, L, buffer sizes, port
 * width) come from npu_config.h, generated from the same table the performance model reads
 * (brainwave/fpga/boards.py TARGETS; brainwave/fpga/perf.py).
 *
 * CONV2D is a dataflow region of four processes joined by streams:
 *   read_act      reads every touched input row ONCE per layer (float32, long bursts), quantizes it into
 *                 16-lane blocks (integer max, exponent from the bits, round half to even) and streams them; it
 *                 also streams the residuals, per group of P pixels, in the order the engine adds them;
 *   fetch_weights streams weight tiles: all taps x all input-channel blocks for K output channels, which are
 *                 contiguous in the weights blob, as 128-bit bursts (mantissas, exponents, biases);
 *   conv_engine   keeps the quantized rows in a circular line buffer (rows stream in while the band's first
 *                 K-tile computes) and weight tiles in two ping-pong banks, and computes work units of P x l
 *                 output pixels x K output channels: per (tap, chunk) step and interleaved pixel group, P x K
 *                 exact 16-lane integer sums (one DSP cascade each; two bfp16 products per DSP48E2), one
 *                 int->float32 conversion (round to nearest even), an exponent add (the power-of-two scale) and
 *                 one float32 add into that (pixel, channel)'s own accumulator. The l pixel groups take turns, so
 *                 an accumulator is touched every l >= NPU_L_MIN cycles (the adder latency) and adds its partials
 *                 in the spec's order: taps row-major, then chunks ascending. Then the same lanes add the bias
 *                 and the residual and apply the activation (the vector unit, P x 16 lanes);
 *   write_act     writes each pixel's K consecutive output channels back to the arena.
 * Depthwise convs use the same lanes as P pixels x 16 channels, one product (one chunk) per lane and tap.
 * Grouped convs whose groups are not 16-aligned, and layers too large for the on-chip buffers, take the
 * generic path (conv_generic: the v1 datapath, one 16-lane MAC per cycle, re-quantizing per pixel and tap).
 *
 * Build the C model with -O2 -ffp-contract=off and without -ffast-math: no FMA contraction, no reassociation.
 */
#include "hls_compat.h"
#include "npu_format.h" /* the format's facts the native executor shares: validation, precisions, packing, chunks */
#include "npu_kernel.h"

namespace {

typedef uint32_t u32;
typedef uint64_t u64;

/* ---------------------------------------------------------------------------------------------------- */
/* Configuration (npu_config.h) */

constexpr int P = NPU_P;                       /* output pixels per cycle */
constexpr int KD = NPU_KD;                     /* DSP cascades per pixel = output channels per cycle in bfp20 */
constexpr int L = NPU_L;                       /* interleaved pixel groups, >= float adder latency */
constexpr int KMAX = NPU_KMAX;                 /* output channels per work unit in bfp16 / bfp12 */
constexpr int ACCW = NPU_ACC_LANES;            /* accumulate lanes per pixel (vector unit: P x ACCW) */
constexpr int KWIDE = (KMAX > 2 * KD ? KMAX : 2 * KD) < ACCW ? (KMAX > 2 * KD ? KMAX : 2 * KD) : ACCW;
                                               /* the widest K: bfp16 packed, or bfp20 with split cascades */
constexpr u32 LB_BLOCKS = NPU_LB_BLOCKS;       /* line buffer, 16-lane blocks */
constexpr u32 WB_BLOCKS = NPU_WB_BLOCKS;       /* one weight-tile bank, 16-lane blocks (bfp16 size) */
constexpr int BEAT_BYTES = BW_BEAT_BYTES;      /* 128-bit weight beats */
constexpr int PACK_SHIFT = 19;                 /* WP486-style packing: two weights 2^19 apart in one 27-bit operand */
constexpr int VW = NPU_PORT_BITS / 32;         /* floats per port beat */
constexpr int POOL_LANES = NPU_POOL_LANES;     /* channels a pool combines per cycle */

typedef ap_uint<128> beat_t;
/* The weights and the arena each come through two m_axi ports onto the same buffer (docs/hardware.md "Memory
 * ports"): a weight run moves as pairs of consecutive beats, the first through `weights`, the second through
 * `weights_b`; an activation block's first half (8 floats) moves through `arena`, its second through `arena_b`. */
struct BeatPair {
    beat_t lo, hi;
};
constexpr int PAIR_BYTES = 2 * BEAT_BYTES;
constexpr int HALF = BW_BLOCK / 2; /* floats of a block each arena port moves */

#ifdef __SYNTHESIS__
#define NPU_BUFFER static /* on-chip memories */
#else
#define NPU_BUFFER static thread_local /* C-sim: off the stack; one copy per calling thread (re-entrant library) */
#endif

/* The chunk partial (float)isum * 2^k: one int->float conversion (round to nearest even past 2^24, bfp20 only)
 * and an exponent add. docs/numerics.md "Why the exponent is clamped": a non-zero partial is a normal float in
 * [2^-124, 2^107), so adding k to the exponent field is exact; isum == 0 gives +0.0. In hardware this is an
 * 8-bit adder on the converter's exponent, not a multiplier. */
inline float chunk_partial(int isum, int k) {
#pragma HLS INLINE
    float f = (float)isum;
    u32 u = bw_f2u(f) + ((u32)k << 23);
    return isum == 0 ? 0.0f : bw_u2f(u);
}

/* One 128-bit beat of the weights blob starting at byte `a` (16-byte aligned in every caller; bytes past the
 * blob's end read as 0). */
beat_t read_beat(const uint8_t *weights, u64 a, u32 limit) {
#pragma HLS INLINE
    uint8_t by[BEAT_BYTES];
#pragma HLS ARRAY_PARTITION variable = by complete
    bw_read_beat(weights, a, limit, by);
    beat_t b = 0;
    for (int i = 0; i < BEAT_BYTES; i++) {
#pragma HLS UNROLL
        NPU_SET_RANGE(b, 8 * i + 7, 8 * i, by[i]);
    }
    return b;
}

inline void beat_bytes(const beat_t &b, uint8_t out[BEAT_BYTES]) {
#pragma HLS INLINE
    for (int i = 0; i < BEAT_BYTES; i++) {
#pragma HLS UNROLL
        out[i] = (uint8_t)b.range(8 * i + 7, 8 * i);
    }
}

/* Quantizes one activation block x[0..15] (docs/numerics.md "Quantizing a block"). mbits = magnitude bits M.
 * Writes the mantissas, returns the shared exponent E. 16 lanes in parallel on the float32 bit patterns (integer
 * shifts for hardware; the native executor's kernels.h gets the same mantissas from a float32 scaling on SIMD). */
int quantize_block(const float x[BW_BLOCK], int mbits, int16_t m[BW_BLOCK]) {
#pragma HLS INLINE
    u32 mag[BW_BLOCK];
    u32 neg[BW_BLOCK];
#pragma HLS ARRAY_PARTITION variable = mag complete
#pragma HLS ARRAY_PARTITION variable = neg complete
    u32 amax = 0;
    for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
        u32 u = bw_f2u(x[i]);
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

/* ---------------------------------------------------------------------------------------------------- */
/* Instruction fields */

typedef bw_insn Insn; /* decoded by bw_decode_insn (npu_isa.h, generated from brainwave/npu/isa.py); checked before
                       * anything runs by bw_check_insn (npu_format.h), the native executor's validator too */

inline u32 ceil_div(u32 a, u32 b) { return (a + b - 1) / b; }
inline u32 umin(u32 a, u32 b) { return a < b ? a : b; }

/* ---------------------------------------------------------------------------------------------------- */
/* CONV2D plan: the tiling every process of the dataflow region follows. brainwave/fpga/perf.py (ConvPlan)
 * implements the same rules; tests/fpga/test_npu_config.py compares the two on the catalog networks. */

enum { PATH_DENSE = 0, PATH_DEPTHWISE = 1, PATH_GENERIC = 2 };

struct Plan {
    u32 path;
    u32 nb_in;     /* 16-channel blocks per input pixel */
    u32 nbw;       /* weight blocks per (output, tap): dense; 1 for depthwise */
    u32 taps;
    u32 steps;     /* (tap, chunk) steps per work unit */
    u32 k;         /* output channels per work unit (K-tile) */
    u32 kt_per_group, n_kt;
    u32 rows_cap;  /* input rows the line buffer holds */
    u32 band_rows; /* output rows per band */
    u32 n_bands;
    bool resident; /* the weight tile stays in its bank across bands (fetched once per layer) */
    bool lookahead; /* the next band's rows fit beside the current band's: absorbed while it computes */
    u32 l_eff;     /* interleaved groups this layer uses, in [NPU_L_MIN, NPU_L]: work units of P x l_eff pixels */
};

/* Line-buffer row index of input row iy. When the stride is larger than the kernel (a 1x1/2 projection), rows
 * no tap reads take no slot: row oy*sh - pt + ky gets index oy*kh + ky. */
inline u64 row_index(const Insn &d, long iy) {
    if (d.kh < d.sh) {
        const u64 v = (u64)(iy + (long)d.pt);
        return (v / d.sh) * d.kh + v % d.sh;
    }
    return (u64)iy;
}

/* Line-buffer rows a band of R output rows spans, and the rows the next band adds. */
inline u64 band_span(const Insn &d, u32 r) {
    u64 s = d.kh < d.sh ? (u64)r * d.kh : (u64)(r - 1) * d.sh + d.kh;
    return s < d.in_h ? s : d.in_h;
}

inline u64 band_ahead(const Insn &d, u32 r) {
    if (r >= d.out_h) return 0;
    u64 a = d.kh < d.sh ? (u64)r * d.kh : (u64)r * d.sh;
    return a < d.in_h ? a : d.in_h;
}

Plan plan_conv(const Insn &d) {
    Plan p;
    p.nb_in = bw_ceil16(d.in_c);
    p.taps = d.kh * d.kw;
    const u32 cg = d.in_c / d.groups;
    const u32 opg = d.out_c / d.groups;
    const u32 bb = bw_block_bytes(d.prec);
    u32 cap = (u32)NPU_WBUF_BYTES / bb; /* blocks one weight bank holds in this precision */
    if (cap > WB_BLOCKS) cap = WB_BLOCKS;
    p.resident = false;
    p.lookahead = true;
    p.l_eff = L;
    p.band_rows = p.n_bands = p.rows_cap = p.k = p.kt_per_group = p.n_kt = p.steps = 0;
    p.nbw = 1;
    if (bw_is_depthwise(d)) {
        p.path = PATH_DEPTHWISE;
        p.steps = p.taps;
        p.k = ACCW;
        p.kt_per_group = p.n_kt = ceil_div(d.in_c, ACCW);
        if ((u64)p.taps * p.nb_in > cap) p.path = PATH_GENERIC;
        p.resident = true; /* all taps x all channel blocks: one tile */
    } else if (d.groups == 1 || cg % BW_BLOCK == 0) {
        p.path = PATH_DENSE;
        p.nbw = bw_ceil16(cg);
        u64 steps = (u64)p.taps * p.nbw;
        /* bfp20: one product per DSP, K = Kd; a chunk with at most 8 live lanes (a stem with few input channels)
         * needs half a cascade, so each cascade splits in two and K doubles. bfp16/bfp12: two per DSP. */
        u32 kprec = (u32)KMAX;
        if (d.prec == BW_PREC_BFP20) kprec = cg <= BW_BLOCK / 2 && 2 * KD <= ACCW ? 2u * KD : (u32)KD;
        u64 fit = steps <= cap ? cap / steps : 0;
        u32 k = kprec;
        if (k > opg) k = opg;
        if ((u64)k > fit) k = (u32)fit;
        if (k == 0) {
            p.path = PATH_GENERIC;
        } else {
            p.steps = (u32)steps;
            p.k = k;
            p.kt_per_group = ceil_div(opg, k);
            p.n_kt = d.groups * p.kt_per_group;
            p.resident = p.n_kt == 1;
        }
    } else {
        p.path = PATH_GENERIC;
    }
    if (p.path == PATH_GENERIC) return p;
    /* line buffer: whole input rows; a band of R output rows needs its span plus the next band's new rows */
    const u64 row_blocks = (u64)d.in_w * p.nb_in;
    p.rows_cap = row_blocks == 0 ? 0xFFFFFFFFu : (u32)((u64)LB_BLOCKS / row_blocks);
    u32 r = 0;
    if (d.out_h > 0 && band_span(d, d.out_h) <= p.rows_cap) {
        r = d.out_h; /* the whole layer in one band */
    } else {
    BAND_SIZE:
        for (u32 c = 1; c < d.out_h; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 16
            if (band_span(d, c) + band_ahead(d, c) > p.rows_cap) break;
            r = c;
        }
    }
    if (r == 0 && d.out_h > 0 && band_span(d, 1) <= p.rows_cap) { /* no look-ahead: fill, then compute */
        r = 1;
        p.lookahead = false;
    }
    if (r == 0 && d.out_h > 0) {
        p.path = PATH_GENERIC;
        return p;
    }
    p.band_rows = r;
    p.n_bands = r ? ceil_div(d.out_h, r) : 0;
    /* the interleave that wastes the fewest slots on the bands' pixels (ties: the deeper one) */
    const u32 pix = umin(r, d.out_h) * d.out_w;
    u32 best = 0xFFFFFFFFu;
INTERLEAVE:
    for (u32 l = NPU_L; l >= (u32)NPU_L_MIN && l >= 1; l--) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 4 avg = 3
        const u32 slots = ceil_div(pix, P * l) * l;
        if (slots < best) {
            best = slots;
            p.l_eff = l;
        }
    }
    return p;
}

/* Does any (output row, tap row) read input row iy? (stride > kernel skips rows) */
bool row_touched(const Insn &d, u32 iy) {
    bool t = false;
    for (u32 ky = 0; ky < d.kh; ky++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
        long v = (long)iy + (long)d.pt - (long)ky;
        if (v >= 0 && v % (long)d.sh == 0 && v / (long)d.sh < (long)d.out_h) t = true;
    }
    return t;
}

/* Input rows [lo, hi) band b reads. */
void band_rows_in(const Insn &d, const Plan &p, u32 b, long &lo, long &hi) {
    const u32 oy0 = b * p.band_rows;
    const u32 oy1 = umin(oy0 + p.band_rows, d.out_h);
    lo = (long)oy0 * d.sh - (long)d.pt;
    hi = (long)(oy1 - 1) * d.sh - (long)d.pt + (long)d.kh;
    if (lo < 0) lo = 0;
    if (hi > (long)d.in_h) hi = d.in_h;
}

/* Output channels [o0, o0 + kc) of K-tile t, and the first activation block of its group. */
void ktile(const Insn &d, const Plan &p, u32 t, u32 &o0, u32 &kc, u32 &ab0) {
    if (p.path == PATH_DEPTHWISE) {
        o0 = t * p.k;
        kc = umin(p.k, d.out_c - o0);
        ab0 = 0;
        return;
    }
    const u32 opg = d.out_c / d.groups;
    const u32 g = t / p.kt_per_group, j = t % p.kt_per_group;
    o0 = g * opg + j * p.k;
    kc = umin(p.k, opg - j * p.k);
    ab0 = g * ((d.in_c / d.groups) / BW_BLOCK);
}

/* ---------------------------------------------------------------------------------------------------- */
/* CONV2D dataflow processes */

struct QBlock { /* one quantized 16-lane activation block */
    int16_t m[BW_BLOCK];
    int8_t e;
};

struct GroupSeg { /* one interleaved group: P pixels x ACCW channels (residuals in, results out) */
    float v[P][ACCW];
};

/* Arena element i, lane `lane` of its block: lanes 0-7 come through `arena`, 8-15 through `arena_b`. */
inline float arena_at(const float *arena, const float *arena_b, u64 i, int lane) {
#pragma HLS INLINE
    return lane % BW_BLOCK < HALF ? arena[i] : arena_b[i];
}

/* The vector unit's step: VW2 floats, two port beats, lanes [0, VW) through `arena` and [VW, VW2) through
 * `arena_b` (reads and writes alike: each port has its own read and write channels). */
constexpr int VW2 = 2 * VW;
inline float vload(const float *arena, const float *arena_b, u64 i, int j) {
#pragma HLS INLINE
    return j < VW ? arena[i] : arena_b[i];
}
inline void vstore(float *arena, float *arena_b, u64 i, int j, float v) {
#pragma HLS INLINE
    if (j < VW) arena[i] = v;
    else arena_b[i] = v;
}

/* Reads each touched input row once (in band order), quantizes it block by block, and the residual segments in
 * the order the vector unit consumes them. */
void read_act(const float *arena, const float *arena_b, const Insn &d, const Plan &p, hls::stream<QBlock, 64> &qs,
              hls::stream<GroupSeg, 8> &rs) {
    const int mbits = bw_act_bits(d.prec);
    long loaded = 0; /* rows [0, loaded) have been read */
BANDS_R:
    for (u32 b = 0; b < p.n_bands; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 8
        long lo, hi;
        band_rows_in(d, p, b, lo, hi);
        if (loaded < lo) loaded = lo;
    ROWS_R:
        for (long iy = loaded; iy < hi; iy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 32 avg = 4
            if (!row_touched(d, (u32)iy)) continue;
            const u64 row = d.in_off + (u64)iy * d.in_w * d.in_c;
        ROW_BLOCKS:
            for (u32 ix = 0; ix < d.in_w; ix++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 224 avg = 28
                for (u32 blk = 0; blk < p.nb_in; blk++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 16
#pragma HLS PIPELINE II = 1
                    float x[BW_BLOCK];
                    const u64 px = row + (u64)ix * d.in_c;
                    for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
                        u32 c = blk * BW_BLOCK + l;
                        x[l] = c < d.in_c ? arena_at(arena, arena_b, px + c, l) : 0.0f;
                    }
                    QBlock q;
                    q.e = (int8_t)quantize_block(x, mbits, q.m);
                    qs.write(q);
                }
            }
        }
        if (hi > loaded) loaded = hi;
        if (!d.has_res) continue;
        const u32 oy0 = b * p.band_rows, pix = (umin(oy0 + p.band_rows, d.out_h) - oy0) * d.out_w;
    RES_TILES:
        for (u32 t = 0; t < p.n_kt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 8
            u32 o0, kc, ab0;
            ktile(d, p, t, o0, kc, ab0);
        RES_PIX: /* per group of P pixels, in the order the engine's epilogue adds them */
            for (u32 s0 = 0; s0 < pix; s0 += P) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 32
                GroupSeg g;
                for (int pp = 0; pp < P; pp++) {
#pragma HLS PIPELINE II = 1
                    const u32 q = s0 + (u32)pp;
                    const u64 src = d.res_off + ((u64)oy0 * d.out_w + q) * d.out_c + o0;
                    for (int k = 0; k < ACCW; k++) {
#pragma HLS UNROLL
                        g.v[pp][k] = (q < pix && (u32)k < kc) ? arena_at(arena, arena_b, src + k, k) : 0.0f;
                    }
                }
                rs.write(g);
            }
        }
    }
}

/* Streams the weight tiles as pairs of 128-bit beats, one beat from each weights port per cycle: per tile its
 * mantissa blocks (contiguous in the blob), exponents and biases, each a run of aligned beat pairs (the second
 * beat of a run's last pair may lie past the run: the unpacker ignores it). Dense: every K-tile once per band
 * (once per layer when the layer has a single tile); depthwise: the whole layer once. */
void fetch_run(const uint8_t *weights, const uint8_t *weights_b, u32 weights_bytes, u64 first, u64 n,
               hls::stream<BeatPair, 256> &ws) {
BURST:
    for (u64 a = first & ~(u64)(BEAT_BYTES - 1); a < first + n; a += PAIR_BYTES) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 18432 avg = 512
#pragma HLS PIPELINE II = 1
        BeatPair pr;
        pr.lo = read_beat(weights, a, weights_bytes);
        pr.hi = read_beat(weights_b, a + BEAT_BYTES, weights_bytes);
        ws.write(pr);
    }
}

void tile_extent(const Insn &d, const Plan &p, u32 t, u64 &blk0, u64 &nblk, u32 &o0, u32 &kc) {
    u32 ab0;
    ktile(d, p, t, o0, kc, ab0);
    if (p.path == PATH_DEPTHWISE) {
        blk0 = 0;
        nblk = (u64)p.taps * p.nb_in;
        o0 = 0;
        kc = d.out_c;
    } else {
        blk0 = (u64)o0 * p.steps;
        nblk = (u64)kc * p.steps;
    }
}

void fetch_weights(const uint8_t *weights, const uint8_t *weights_b, u32 weights_bytes, const Insn &d,
                   const Plan &p, hls::stream<BeatPair, 256> &ws) {
    const u32 bb = bw_block_bytes(d.prec);
    const u32 n_tiles = p.path == PATH_DEPTHWISE ? 1 : p.n_kt;
    const u32 passes = p.resident ? 1 : p.n_bands;
PASSES:
    for (u32 b = 0; b < passes; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 16 avg = 2
    TILES_F:
        for (u32 t = 0; t < n_tiles; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 16
            u64 blk0, nblk;
            u32 o0, kc;
            tile_extent(d, p, t, blk0, nblk, o0, kc);
            fetch_run(weights, weights_b, weights_bytes, d.mant_off + blk0 * bb, nblk * bb, ws);
            fetch_run(weights, weights_b, weights_bytes, d.exp_off + blk0, nblk, ws);
            fetch_run(weights, weights_b, weights_bytes, d.bias_off + 4ull * o0, 4ull * kc, ws);
        }
    }
}

/* One weight bank: a tile unpacked for the engine, blocks in (step, output) order. */
struct WTile {
    int16_t m[WB_BLOCKS][BW_BLOCK];
    int8_t e[WB_BLOCKS];
    float bias[NPU_MAX_CHANNELS];
};

/* Unpacks one tile into a bank, one pair of 128-bit beats per call, so the engine can run it inside its compute
 * loop (the ping-pong: tile g+1 fills one bank while tile g computes from the other). Block i of the mantissa run
 * (blob order: output-major, then tap, then chunk) goes to slot (step * K + k), so a step's K weight blocks sit
 * side by side for the P x K cascades. Slots of outputs past a short tile keep stale weights: their lanes
 * compute values nobody writes (and, packed, the low sum of a DSP does not depend on the high weight). */
struct Unpacker {
    WTile *bank;
    u32 prec, bb, steps, K;
    bool dw;
    u32 run;           /* 0 mantissas, 1 exponents, 2 biases, 3 done */
    u64 first[3], n[3];
    u64 a;             /* address of the next beat pair of the current run */
    u64 i;             /* bytes of the current run consumed */
    u32 word;          /* bias bytes being assembled */

    void start(const Insn &d, const Plan &p, u32 t, WTile *b) {
        u64 blk0, nblk;
        u32 o0, kc;
        tile_extent(d, p, t, blk0, nblk, o0, kc);
        bank = b;
        prec = d.prec;
        bb = bw_block_bytes(d.prec);
        steps = p.steps;
        K = p.k;
        dw = p.path == PATH_DEPTHWISE;
        first[0] = d.mant_off + blk0 * bb;
        n[0] = nblk * bb;
        first[1] = d.exp_off + blk0;
        n[1] = nblk;
        first[2] = d.bias_off + 4ull * o0;
        n[2] = 4ull * kc;
        run = 0;
        i = 0;
        word = 0;
        a = first[0] & ~(u64)(BEAT_BYTES - 1);
        skip_empty();
    }
    bool busy() const { return run < 3; }
    u64 slot(u64 blk) const { return dw ? blk : (blk % steps) * K + blk / steps; }
    void skip_empty() {
        while (run < 3 && n[run] == 0) next_run();
    }
    void next_run() {
        run++;
        i = 0;
        if (run < 3) a = first[run] & ~(u64)(BEAT_BYTES - 1);
    }
    /* the blob's bytes one at a time, as the beats arrive: bw_weight_lane (npu_format.h) unpacks whole blocks */
    void put(uint8_t v) {
        if (run == 0) {
            const u64 blk = i / bb, off = i % bb;
            int16_t *m = bank->m[slot(blk)];
            if (prec == BW_PREC_BFP16) {
                m[off] = (int8_t)v;
            } else if (prec == BW_PREC_BFP20) {
                const int l = (int)(off >> 1);
                if (off & 1) m[l] = (int16_t)(uint16_t)(((u32)v << 8) | ((u32)m[l] & 0xFFu));
                else m[l] = (int16_t)v;
            } else {
                m[2 * off] = (int16_t)bw_nibble(v);
                m[2 * off + 1] = (int16_t)bw_nibble((u32)v >> 4);
            }
        } else if (run == 1) {
            bank->e[slot(i)] = (int8_t)v;
        } else {
            word |= (u32)v << (8 * (i & 3));
            if ((i & 3) == 3) {
                bank->bias[i >> 2] = bw_u2f(word);
                word = 0;
            }
        }
        i++;
    }
    /* consumes one beat pair of the current run */
    void step(hls::stream<BeatPair, 256> &ws) {
#pragma HLS INLINE
        uint8_t by[PAIR_BYTES];
        const BeatPair pr = ws.read();
        beat_bytes(pr.lo, by);
        beat_bytes(pr.hi, by + BEAT_BYTES);
        const u64 lo = first[run], hi = first[run] + n[run];
        for (int j = 0; j < PAIR_BYTES; j++) {
#pragma HLS UNROLL
            const u64 pos = a + j;
            if (pos >= lo && pos < hi) put(by[j]);
        }
        a += PAIR_BYTES;
        if (a >= hi) {
            next_run();
            skip_empty();
        }
    }
};

/* Copies the quantized input rows of one band from the reader's stream into the circular line buffer, one
 * block per call (the engine runs it inside its compute loop for the next band when the plan has look-ahead). */
struct RowAbsorber {
    const Insn *d;
    const Plan *p;
    long iy, hi;  /* next row to take; rows below hi are wanted */
    u32 i;        /* blocks of row iy taken */
    u32 row_blocks;

    void init(const Insn &dd, const Plan &pp) {
        d = &dd;
        p = &pp;
        iy = hi = 0;
        i = 0;
        row_blocks = dd.in_w * pp.nb_in;
    }
    /* wants band b's rows too (rows come in order: the reader streams every touched row once) */
    void extend(u32 b) {
        long lo, h;
        band_rows_in(*d, *p, b, lo, h);
        if (h > hi) hi = h;
        settle();
    }
    void settle() { /* skip rows no tap reads, and empty rows */
        while (iy < hi && (row_blocks == 0 || !row_touched(*d, (u32)iy))) iy++;
    }
    bool busy() const { return iy < hi; }
    /* rows [0, r] all taken? */
    bool has(long r) const { return iy > r || (iy >= hi && r < hi); }
    void step(hls::stream<QBlock, 64> &qs, int16_t (*lb_m)[BW_BLOCK], int8_t *lb_e) {
#pragma HLS INLINE
        const QBlock q = qs.read();
        const u64 at = (row_index(*d, iy) % p->rows_cap) * row_blocks + i;
        for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
            lb_m[at][l] = q.m[l];
        }
        lb_e[at] = q.e;
        if (++i == row_blocks) {
            i = 0;
            iy++;
            settle();
        }
    }
};

/* The P x K cascades of one pixel for one step: exact 16-lane integer sums (docs/numerics.md "Dot product").
 * Under synthesis (and in C-sim with -DNPU_DSP_PACKED) bfp16/bfp12 use the DSP48E2 form: two weights of
 * adjacent output channels share the activation operand, packed 2^19 apart by the 27-bit pre-adder,
 * (w_hi * 2^19 + w_lo) * a; a 16-deep cascade accumulates 48-bit sums, the low sum is the low 19 bits sign-
 * extended (|sum| <= 16 * 127 * 127 < 2^18) and the high one (P - low) >> 19. The plain form computes the same
 * integers; tests/hls/test_kernel_variants.py runs the sweep with both. */
template <int K>
inline void cascades(u32 prec, const int16_t a[BW_BLOCK], const int16_t (*w)[BW_BLOCK], int isum[K]) {
#pragma HLS INLINE
#if (defined(NPU_DSP_PACKED) || defined(__SYNTHESIS__)) && NPU_PACK == 2
    if (prec != BW_PREC_BFP20 && K % 2 == 0) {
        for (int k = 0; k < K; k += 2) {
#pragma HLS UNROLL
            int64_t acc = 0; /* ap_int<48> in the DSP cascade */
            for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
                const int64_t ad = (int64_t)w[k + 1][l] * (1 << PACK_SHIFT) + w[k][l]; /* pre-adder, 27 bits */
                acc += ad * a[l];
            }
            const int64_t lo = (int64_t)((uint64_t)acc << (64 - PACK_SHIFT)) >> (64 - PACK_SHIFT);
            isum[k] = (int)lo;
            isum[k + 1] = (int)((acc - lo) >> PACK_SHIFT);
        }
        return;
    }
#else
    (void)prec;
#endif
    for (int k = 0; k < K; k++) {
#pragma HLS UNROLL
        int s = 0;
        for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
            s += (int)a[l] * (int)w[k][l];
        }
        isum[k] = s;
    }
}

/* Position of the flattened compute loop: work unit, (tap, chunk) step, interleaved group. */
struct Cursor {
    u32 u, step, j, ky, kx, c;
};

/* One iteration of the compute loop: group j of unit u, one step, P pixels x K channels. Steps 0 .. steps-1 are
 * the (tap, chunk) partials; then the same lanes are the vector unit: step `steps` adds the bias, step
 * `steps + 1` the residual (when there is one), and the last step applies the activation and hands the group to
 * the writer. */
template <int K>
inline void engine_iteration(const Insn &d, const Plan &p, const Cursor &cur, u32 q_band, u32 pix, u32 ab0,
                             u32 o0, u32 kc, int mshift, const int16_t (*lb_m)[BW_BLOCK], const int8_t *lb_e,
                             const WTile &wt, float acc[L][P][ACCW], hls::stream<GroupSeg, 8> &rs,
                             hls::stream<GroupSeg, 8> &os) {
#pragma HLS INLINE
    const u32 s0 = (cur.u * p.l_eff + cur.j) * P; /* first pixel of the group within the band */
    if (s0 >= pix) return;                 /* a group past the band's last pixel: predicated off */
    const bool dw = p.path == PATH_DEPTHWISE;
    if (cur.step >= p.steps) { /* epilogue: the vector unit */
        const u32 e = cur.step - p.steps;
        if (e == 0) {
        BIAS:
            for (int pp = 0; pp < P; pp++)
                for (int k = 0; k < ACCW; k++) {
#pragma HLS UNROLL
                    const u32 bi = dw ? o0 + (u32)k : (u32)k;
                    acc[cur.j][pp][k] = acc[cur.j][pp][k] + ((u32)k < kc ? wt.bias[bi] : 0.0f);
                }
        } else {
            const GroupSeg r = rs.read();
        RESIDUAL:
            for (int pp = 0; pp < P; pp++)
                for (int k = 0; k < ACCW; k++) {
#pragma HLS UNROLL
                    acc[cur.j][pp][k] = acc[cur.j][pp][k] + r.v[pp][k];
                }
        }
        if (e + 1 == 1u + d.has_res) {
            GroupSeg g;
        ACTIVATE:
            for (int pp = 0; pp < P; pp++)
                for (int k = 0; k < ACCW; k++) {
#pragma HLS UNROLL
                    g.v[pp][k] = bw_canon(bw_activate(acc[cur.j][pp][k], d.act));
                }
            os.write(g);
        }
        return;
    }
    const u32 tap = cur.ky * d.kw + cur.kx;
    const int16_t(*w)[BW_BLOCK] = dw ? wt.m + (u64)tap * p.nb_in : wt.m + (u64)cur.step * p.k;
    const int8_t *we = dw ? wt.e + (u64)tap * p.nb_in : wt.e + (u64)cur.step * p.k;
    if (cur.step == 0) {
        for (int pp = 0; pp < P; pp++)
            for (int k = 0; k < ACCW; k++) acc[cur.j][pp][k] = 0.0f;
    }
PIXELS:
    for (int pp = 0; pp < P; pp++) {
#pragma HLS UNROLL
        const u32 s = s0 + (u32)pp;
        if (s >= pix) continue;
        const u32 q = q_band + s;
        const u32 oy = q / d.out_w, ox = q % d.out_w;
        const long iy = (long)oy * d.sh - (long)d.pt + cur.ky;
        const long ix = (long)ox * d.sw - (long)d.pl + cur.kx;
        if (iy < 0 || iy >= (long)d.in_h || ix < 0 || ix >= (long)d.in_w) continue; /* padding: adds +0.0 */
        const u64 pixel_blk = ((row_index(d, iy) % p.rows_cap) * d.in_w + (u64)ix) * p.nb_in;
        float *ac = acc[cur.j][pp];
        if (dw) { /* ACCW channels from ACCW / 16 blocks, one product per lane */
            const u32 cb0 = ab0;
        DW_BLOCKS:
            for (u32 cb = 0; cb < ACCW / BW_BLOCK && cb0 + cb < p.nb_in; cb++) {
#pragma HLS UNROLL
                const int16_t *a = lb_m[pixel_blk + cb0 + cb];
                const int e = lb_e[pixel_blk + cb0 + cb] + we[cb0 + cb] - mshift;
                const int16_t *wl = w[cb0 + cb];
            DW_LANES:
                for (int l = 0; l < BW_BLOCK; l++) {
#pragma HLS UNROLL
                    ac[cb * BW_BLOCK + l] = ac[cb * BW_BLOCK + l] + chunk_partial((int)a[l] * (int)wl[l], e);
                }
            }
        } else {
            const int16_t *a = lb_m[pixel_blk + ab0 + cur.c];
            const int ea = lb_e[pixel_blk + ab0 + cur.c] - mshift;
            int isum[K];
            cascades<K>(d.prec, a, w, isum);
        ACCUMULATE:
            for (int k = 0; k < K; k++) {
#pragma HLS UNROLL
                ac[k] = ac[k] + chunk_partial(isum[k], ea + we[k]);
            }
        }
    }
}

/* Advances the cursor: group fastest (II=1 with the accumulator reused L iterations later), then chunk, tap
 * column, tap row, then the epilogue steps, then the next unit. */
inline void advance(const Insn &d, const Plan &p, Cursor &cur, u32 steps_total) {
#pragma HLS INLINE
    if (++cur.j < p.l_eff) return;
    cur.j = 0;
    cur.step++;
    if (cur.step < p.steps) {
        if (p.path != PATH_DEPTHWISE && ++cur.c < p.nbw) return;
        cur.c = 0;
        if (++cur.kx < d.kw) return;
        cur.kx = 0;
        ++cur.ky;
        return;
    }
    if (cur.step < steps_total) return;
    cur.c = cur.kx = cur.ky = 0;
    cur.step = 0;
    cur.u++;
}

/* The conv engine: owns the line buffer and the two weight banks. Per band, one flattened pipelined loop (II=1,
 * one pipeline fill per band) runs every K-tile's n_units * steps_total * l_eff iterations back to back; each
 * iteration also moves the band's rows into the line buffer (NPU_ABSORB blocks), or else one beat of the next
 * tile into the idle bank (the ping-pong), or else the next band's rows. A tile's iterations are stretched when the next tile's beats need
 * longer, so a bank is complete before it turns active. */
template <int K>
void engine_tiles(const Insn &d, const Plan &p, hls::stream<QBlock, 64> &qs, hls::stream<BeatPair, 256> &ws,
                  hls::stream<GroupSeg, 8> &rs, hls::stream<GroupSeg, 8> &os) {
    NPU_BUFFER int16_t lb_m[LB_BLOCKS][BW_BLOCK]; /* URAM, P banks, lanes side by side; circular in input rows */
    NPU_BUFFER int8_t lb_e[LB_BLOCKS];
    NPU_BUFFER WTile bank[2]; /* URAM ping-pong */
    float acc[L][P][ACCW];    /* P x ACCW accumulate lanes, each with an L-deep LUTRAM of accumulators */
#pragma HLS ARRAY_PARTITION variable = lb_m complete dim = 2
#pragma HLS BIND_STORAGE variable = lb_m type = ram_2p impl = uram
#pragma HLS BIND_STORAGE variable = bank type = ram_2p impl = uram
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 3
#pragma HLS BIND_OP variable = acc op = fadd impl = fabric /* the DSPs all go to the MAC cascades */
    const int mshift = bw_scale_shift(d.prec);
    const u32 loads_per_band = p.path == PATH_DEPTHWISE ? 1 : p.n_kt;
    const u32 total_loads = p.resident ? 1 : p.n_bands * loads_per_band;
    Unpacker unp;
    RowAbsorber rows;
    rows.init(d, p);
    /* prologue: tile 0 into bank 0, exposed (the rows stream in while the first tile computes) */
    unp.start(d, p, 0, &bank[0]);
    u32 g = 1;        /* tile loads started */
    u32 cur_load = 0; /* the load whose bank the current tile reads */
PROLOGUE_W:
    while (unp.busy()) unp.step(ws);
BANDS:
    for (u32 b = 0; b < p.n_bands; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 8
        const u32 oy0 = b * p.band_rows;
        const u32 pix = (umin(oy0 + p.band_rows, d.out_h) - oy0) * d.out_w;
        const u32 n_units = ceil_div(pix, P * p.l_eff);
        const u32 steps_total = p.steps + 1 + d.has_res; /* + bias, + residual */
        const u64 n_iter = (u64)n_units * steps_total * p.l_eff;
        long band_lo, band_hi;
        band_rows_in(d, p, b, band_lo, band_hi);
        rows.extend(b); /* this band's rows, taken as the first K-tile needs them */
        bool ahead = false;
        u32 t = 0, o0 = 0, kc = 0, ab0 = 0;
        u64 done = 0;        /* compute iterations of this tile */
        long need = -1;      /* the last input row the current unit reads */
        u32 need_u = 0xFFFFFFFFu;
        Cursor cur = {0, 0, 0, 0, 0, 0};
        /* enters K-tile t: its bank turns active, the next load starts filling the idle one */
        auto begin_tile = [&]() {
            ktile(d, p, t, o0, kc, ab0);
            if (p.path == PATH_DEPTHWISE) ab0 = o0 / BW_BLOCK; /* first channel block of this channel tile */
            if (!p.resident && (p.path != PATH_DEPTHWISE || t == 0) && (b > 0 || t > 0)) cur_load++;
            if (!unp.busy() && g < total_loads && g == cur_load + 1) {
                unp.start(d, p, p.path == PATH_DEPTHWISE ? 0 : g % loads_per_band, &bank[g & 1]);
                g++;
            }
            done = 0;
            need_u = 0xFFFFFFFFu;
            cur = Cursor{0, 0, 0, 0, 0, 0};
        };
        begin_tile();
    STEPS: /* II=1; a unit waits (bubbles) only until the line buffer holds the rows it reads */
        for (;;) {
#pragma HLS LOOP_TRIPCOUNT min = 8 max = 200000 avg = 20000
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter distance = NPU_L_MIN true
            if (done < n_iter) {
                if (cur.u != need_u) { /* the rows unit u needs: up to its last pixel's last tap row */
                    need_u = cur.u;
                    const u32 q_last = umin((cur.u + 1) * P * p.l_eff, pix) - 1;
                    need = (long)((oy0 + q_last / d.out_w) * d.sh) - (long)d.pt + (long)d.kh - 1;
                    if (need >= (long)d.in_h) need = (long)d.in_h - 1;
                }
                if (need < 0 || rows.has(need)) {
                    engine_iteration<K>(d, p, cur, oy0 * d.out_w, pix, ab0, o0, kc, mshift, lb_m, lb_e,
                                        bank[cur_load & 1], acc, rs, os);
                    advance(d, p, cur, steps_total);
                    done++;
                }
            }
            /* one port of the line buffer: this band's rows first, then the next tile's beats, then (look-ahead)
             * the next band's rows */
            if (rows.busy() && rows.iy < band_hi) {
                for (int r = 0; r < NPU_ABSORB && rows.busy() && rows.iy < band_hi; r++) rows.step(qs, lb_m, lb_e);
            } else if (unp.busy()) {
                unp.step(ws);
            } else if (p.lookahead && b + 1 < p.n_bands) {
                if (!ahead) {
                    rows.extend(b + 1);
                    ahead = true;
                }
                for (int r = 0; r < NPU_ABSORB && rows.busy(); r++) rows.step(qs, lb_m, lb_e);
            }
            if (done == n_iter && !unp.busy()) {
                if (++t == p.n_kt) break;
                begin_tile();
            }
        }
    }
}

void conv_engine(const Insn &d, const Plan &p, hls::stream<QBlock, 64> &qs, hls::stream<BeatPair, 256> &ws,
                 hls::stream<GroupSeg, 8> &rs, hls::stream<GroupSeg, 8> &os) {
    if (p.path == PATH_DEPTHWISE || p.k <= (u32)KD) engine_tiles<KD>(d, p, qs, ws, rs, os);
    else engine_tiles<KWIDE>(d, p, qs, ws, rs, os);
}

/* Writes the finished groups: per pixel its kc consecutive channels, a beat on each arena port per cycle. */
void write_act(float *arena, float *arena_b, const Insn &d, const Plan &p, hls::stream<GroupSeg, 8> &os) {
WBANDS:
    for (u32 b = 0; b < p.n_bands; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 8
        const u32 oy0 = b * p.band_rows;
        const u32 pix = (umin(oy0 + p.band_rows, d.out_h) - oy0) * d.out_w;
    WTILES:
        for (u32 t = 0; t < p.n_kt; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 16
            u32 o0, kc, ab0;
            ktile(d, p, t, o0, kc, ab0);
        WGROUPS:
            for (u32 s0 = 0; s0 < pix; s0 += P) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 32
                const GroupSeg g = os.read();
            WPIX:
                for (int pp = 0; pp < P && s0 + (u32)pp < pix; pp++) {
                    const u64 dst = d.out_off + ((u64)oy0 * d.out_w + s0 + (u32)pp) * d.out_c + o0;
                WBEATS:
                    for (u32 k0 = 0; k0 < kc; k0 += VW2) {
#pragma HLS PIPELINE II = 1
                        for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                            if (k0 + j < kc) vstore(arena, arena_b, dst + k0 + j, j, g.v[pp][k0 + j]);
                        }
                    }
                }
            }
        }
    }
}

void conv_dataflow(const Insn &d, const Plan &p, const uint8_t *weights, const uint8_t *weights_b,
                   u32 weights_bytes, float *arena, float *arena_b) {
#pragma HLS DATAFLOW
    hls::stream<QBlock, 64> qs;   /* quantized input blocks, rows in order */
    hls::stream<GroupSeg, 8> rs;  /* residuals, per group */
    hls::stream<BeatPair, 256> ws; /* weight-tile beat pairs */
    hls::stream<GroupSeg, 8> os;  /* finished groups */
    read_act(arena, arena_b, d, p, qs, rs);
    fetch_weights(weights, weights_b, weights_bytes, d, p, ws);
    conv_engine(d, p, qs, ws, rs, os);
    write_act(arena, arena_b, d, p, os);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Generic path (the v1 datapath): grouped convs whose groups are not 16-aligned, and layers whose rows or
 * weight tiles do not fit the buffers. Per output pixel and valid tap: quantize the input pixel, then walk
 * the chunks (cut at activation and weight block edges) with one float32 accumulator per output channel. */

/* Weight block blk: its 16 mantissas into wm; returns its exponent. */
int load_weight_block(const uint8_t *weights, u32 mant_off, u32 exp_off, u64 blk, u32 prec, int16_t wm[BW_BLOCK]) {
#pragma HLS INLINE
    const uint8_t *src = weights + mant_off + blk * bw_block_bytes(prec);
    for (int i = 0; i < BW_BLOCK; i++) {
#pragma HLS UNROLL
        wm[i] = (int16_t)bw_weight_lane(src, prec, i);
    }
    return (int8_t)weights[exp_off + blk];
}

void conv_generic(const Insn &d, const uint8_t *weights, float *arena) {
    const int mbits = bw_act_bits(d.prec);
    const int mshift = bw_scale_shift(d.prec);
    const u32 nb_in = bw_ceil16(d.in_c);
    const u32 cg = d.in_c / d.groups;
    const u32 opg = d.out_c / d.groups;
    const bool dw = bw_is_depthwise(d);
    int16_t qa[NPU_MAX_BLOCKS][BW_BLOCK];
    int8_t ea[NPU_MAX_BLOCKS];
    float acc[NPU_MAX_CHANNELS];
#pragma HLS ARRAY_PARTITION variable = qa complete dim = 2
GEN_Y:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
    GEN_X:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
            for (u32 o = 0; o < d.out_c; o++) acc[o] = 0.0f;
            for (u32 ky = 0; ky < d.kh; ky++) {
                long iy = (long)oy * d.sh - (long)d.pt + ky;
                if (iy < 0 || iy >= (long)d.in_h) continue;
                for (u32 kx = 0; kx < d.kw; kx++) {
                    long ix = (long)ox * d.sw - (long)d.pl + kx;
                    if (ix < 0 || ix >= (long)d.in_w) continue;
                    const float *px = arena + d.in_off + ((u64)iy * d.in_w + (u64)ix) * d.in_c;
                    for (u32 b = 0; b < nb_in; b++) {
#pragma HLS PIPELINE II = 1
                        float x[BW_BLOCK];
                        for (int l = 0; l < BW_BLOCK; l++) {
                            u32 c = b * BW_BLOCK + l;
                            x[l] = c < d.in_c ? px[c] : 0.0f;
                        }
                        ea[b] = (int8_t)quantize_block(x, mbits, qa[b]);
                    }
                    const u32 tap = ky * d.kw + kx;
                    if (dw) {
                        for (u32 b = 0; b < nb_in; b++) {
                            int16_t wm[BW_BLOCK];
                            const u64 blk = bw_depthwise_weight_block(d, tap, b);
                            const int ew = load_weight_block(weights, d.mant_off, d.exp_off, blk, d.prec, wm);
                            for (int l = 0; l < BW_BLOCK; l++) {
                                u32 o = b * BW_BLOCK + l;
                                if (o < d.out_c) acc[o] = acc[o] + chunk_partial((int)qa[b][l] * wm[l], ea[b] + ew - mshift);
                            }
                        }
                        continue;
                    }
                    for (u32 o = 0; o < d.out_c; o++) {
                        const u32 base = (o / opg) * cg;
                        const u32 end = base + cg;
                        const u64 blk0 = bw_dense_weight_block(d, o, tap, 0);
                        int16_t wm[BW_BLOCK];
                        int ew = 0;
                        u32 loaded = 0xFFFFFFFFu;
                        for (u32 c = base; c < end;) {
                            const bw_chunk k = bw_chunk_at(c, base, end);
                            if (k.wb != loaded) {
                                ew = load_weight_block(weights, d.mant_off, d.exp_off, blk0 + k.wb, d.prec, wm);
                                loaded = k.wb;
                            }
                            int isum = 0;
                            for (u32 i = 0; i < k.len; i++) isum += (int)qa[k.ab][k.al + i] * (int)wm[k.wl + i];
                            acc[o] = acc[o] + chunk_partial(isum, ea[k.ab] + ew - mshift);
                            c += k.len;
                        }
                    }
                }
            }
            const u64 pix = ((u64)oy * d.out_w + ox) * d.out_c;
            for (u32 o = 0; o < d.out_c; o++) {
#pragma HLS PIPELINE II = 1
                float y = acc[o] + bw_f32_le(weights + d.bias_off + 4u * o);
                if (d.has_res) y = y + arena[d.res_off + pix + o];
                arena[d.out_off + pix + o] = bw_canon(bw_activate(y, d.act));
            }
        }
    }
}

void op_conv2d(const Insn &d, const uint8_t *weights, const uint8_t *weights_b, u32 weights_bytes, float *arena,
               float *arena_b) {
    const Plan p = plan_conv(d);
    if (d.out_h == 0 || d.out_w == 0) return;
    if (p.path == PATH_GENERIC) conv_generic(d, weights, arena);
    else conv_dataflow(d, p, weights, weights_b, weights_bytes, arena, arena_b);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Vector-unit instructions: elementwise over the arena, VW2 floats per cycle (a beat on each arena port), except
 * ADD, which reads two operands: VW floats per cycle, one operand through each port. */

/* ADD reads its second operand through the second arena port, so both operands arrive in one cycle. */
void op_add(const Insn &d, float *arena, const float *arena_b) {
    const u64 n = (u64)d.in_h * d.in_w * d.in_c;
ADD:
    for (u64 i = 0; i < n; i += VW) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 200704 avg = 12544
#pragma HLS PIPELINE II = 1
        for (int j = 0; j < VW; j++) {
#pragma HLS UNROLL
            if (i + j < n) {
                float y = arena[d.in_off + i + j] + arena_b[d.in2_off + i + j];
                arena[d.out_off + i + j] = bw_canon(bw_activate(y, d.act));
            }
        }
    }
}

/* op_add without the second operand: a loop of its own, so ACTIVATION reads no second arena stream. */
void op_activation(const Insn &d, float *arena, float *arena_b) {
    const u64 n = (u64)d.in_h * d.in_w * d.in_c;
ACT:
    for (u64 i = 0; i < n; i += VW2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 100352 avg = 6272
#pragma HLS PIPELINE II = 1
        for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
            if (i + j < n) {
                const float v = vload(arena, arena_b, d.in_off + i + j, j);
                vstore(arena, arena_b, d.out_off + i + j, j, bw_canon(bw_activate(v, d.act)));
            }
        }
    }
}

void op_pad(const Insn &d, float *arena, float *arena_b) {
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
            for (u32 c = 0; c < d.out_c; c += VW2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 8
#pragma HLS PIPELINE II = 1
                for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                    if (c + j < d.out_c)
                        vstore(arena, arena_b, dst + c + j, j,
                               inside ? bw_canon(vload(arena, arena_b, src + c + j, j)) : 0.0f);
                }
            }
        }
    }
}

/* CONCAT (ISA v3): per output pixel the first operand's in_c channels, then the second's out_c - in_c, copied
 * (every NaN stored canonical). The channel loop runs over the output; each beat reads from one operand. */
void op_concat(const Insn &d, float *arena, float *arena_b) {
    const u32 cb = d.out_c - d.in_c;
CONCAT_P:
    for (u64 pix = 0; pix < (u64)d.out_h * d.out_w; pix++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 12544 avg = 784
        const u64 dst = d.out_off + pix * d.out_c, a = d.in_off + pix * d.in_c, b = d.in2_off + pix * cb;
    CONCAT_C:
        for (u32 c = 0; c < d.out_c; c += VW2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 512 avg = 16
#pragma HLS PIPELINE II = 1
            for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                const u32 k = c + j;
                if (k >= d.out_c) continue;
                const float v = vload(arena, arena_b, k < d.in_c ? a + k : b + (k - d.in_c), j);
                vstore(arena, arena_b, dst + k, j, bw_canon(v));
            }
        }
    }
}

/* One valid window cell v of a pool, the count-th (docs/numerics.md "Vector unit"): MAXPOOL keeps the first cell,
 * then v > m ? v : m; AVGPOOL sums from +0.0. */
inline void pool_take(bool is_max, u32 count, float v, float &m, float &sum) {
#pragma HLS INLINE
    if (is_max) {
        if (count == 0 || v > m) m = v;
    } else {
        sum = (count == 0 ? 0.0f : sum) + v;
    }
}

/* A window's result after count valid cells: +0.0 without any, else the maximum or sum / (float)count. */
inline float pool_result(bool is_max, u32 count, const float &m, const float &sum) {
#pragma HLS INLINE
    if (count == 0) return 0.0f;
    return is_max ? m : sum / (float)count;
}

/* MAXPOOL and AVGPOOL, fallback for rows too wide for the row cache: per output pixel, the window's cells
 * row-major, each cell's channels as one burst (overlapping windows re-read their cells). */
void pool_direct(const Insn &d, float *arena, float *arena_b) {
    const bool is_max = d.op == BW_OP_MAXPOOL;
    float m[NPU_MAX_CHANNELS];
    float sum[NPU_MAX_CHANNELS];
#pragma HLS ARRAY_PARTITION variable = m cyclic factor = VW2
#pragma HLS ARRAY_PARTITION variable = sum cyclic factor = VW2
POOL_Y:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
    POOL_X:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
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
                    const u64 cell = d.in_off + ((u64)iy * d.in_w + (u64)ix) * d.in_c;
                CELL_C:
                    for (u32 c0 = 0; c0 < d.in_c; c0 += VW2) { /* a beat of channels on each port per cycle */
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 8
#pragma HLS PIPELINE II = 1
                        for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                            const u32 c = c0 + j;
                            if (c < d.in_c) pool_take(is_max, count, vload(arena, arena_b, cell + c, j), m[c], sum[c]);
                        }
                    }
                    count++;
                }
            }
            const u64 dst = d.out_off + ((u64)oy * d.out_w + ox) * d.out_c;
        POOL_OUT:
            for (u32 c0 = 0; c0 < d.out_c; c0 += VW2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 8
#pragma HLS PIPELINE II = 1
                for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                    const u32 c = c0 + j;
                    if (c < d.out_c)
                        vstore(arena, arena_b, dst + c, j, bw_canon(pool_result(is_max, count, m[c], sum[c])));
                }
            }
        }
    }
}

/* MAXPOOL and AVGPOOL; padding cells are skipped and a window without any valid cell writes +0.0f. Each input
 * row is read once (VW2 floats per cycle, both arena ports) into a circular row cache; each output pixel then
 * combines its window's cells row-major, POOL_LANES channels per cycle. */
void op_pool(const Insn &d, float *arena, float *arena_b) {
    NPU_BUFFER float cache[NPU_POOL_FLOATS];
#pragma HLS ARRAY_PARTITION variable = cache cyclic factor = NPU_POOL_LANES
    const u64 row_floats = (u64)d.in_w * d.in_c;
    const u64 cap = row_floats ? NPU_POOL_FLOATS / row_floats : 0;
    const u64 need = d.kh < d.in_h ? d.kh : d.in_h;
    if (row_floats == 0 || cap < need) {
        pool_direct(d, arena, arena_b);
        return;
    }
    const bool is_max = d.op == BW_OP_MAXPOOL;
    long loaded = 0;
PROWS:
    for (u32 oy = 0; oy < d.out_h; oy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
        long lo = (long)oy * d.sh - (long)d.pt, hi = lo + (long)d.kh;
        if (lo < 0) lo = 0;
        if (hi > (long)d.in_h) hi = d.in_h;
        if (loaded < lo) loaded = lo;
    PLOAD:
        for (long iy = loaded; iy < hi; iy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 3 avg = 2
            const u64 src = d.in_off + (u64)iy * row_floats;
            float *dst = cache + ((u64)iy % cap) * row_floats;
            for (u64 i = 0; i < row_floats; i += VW2) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 8192 avg = 1024
#pragma HLS PIPELINE II = 1
                for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                    if (i + j < row_floats) dst[i + j] = vload(arena, arena_b, src + i + j, j);
                }
            }
        }
        if (hi > loaded) loaded = hi;
    PCOLS:
        for (u32 ox = 0; ox < d.out_w; ox++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 112 avg = 28
            const u64 dst = d.out_off + ((u64)oy * d.out_w + ox) * d.out_c;
        PBLOCKS:
            for (u32 c0 = 0; c0 < d.in_c; c0 += POOL_LANES) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 2
                float m[POOL_LANES], sum[POOL_LANES];
                u32 count = 0;
            PCELLS_Y:
                for (u32 ky = 0; ky < d.kh; ky++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
                    const long iy = (long)oy * d.sh - (long)d.pt + ky;
                    if (iy < 0 || iy >= (long)d.in_h) continue;
                PCELLS_X:
                    for (u32 kx = 0; kx < d.kw; kx++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 7 avg = 3
#pragma HLS PIPELINE II = 1
                        const long ix = (long)ox * d.sw - (long)d.pl + kx;
                        if (ix < 0 || ix >= (long)d.in_w) continue;
                        const float *cell = cache + ((u64)iy % cap) * row_floats + (u64)ix * d.in_c;
                        for (int j = 0; j < POOL_LANES; j++) {
#pragma HLS UNROLL
                            const u32 c = c0 + j;
                            pool_take(is_max, count, c < d.in_c ? cell[c] : 0.0f, m[j], sum[j]);
                        }
                        count++;
                    }
                }
                for (int j = 0; j < POOL_LANES; j++) {
#pragma HLS UNROLL
                    const u32 c = c0 + j;
                    if (c < d.out_c) arena[dst + c] = bw_canon(pool_result(is_max, count, m[j], sum[j]));
                }
            }
        }
    }
}

void op_global_avgpool(const Insn &d, float *arena, const float *arena_b) {
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
        for (u32 c0 = 0; c0 < d.in_c; c0 += VW2) { /* per channel, pixels in order: a beat on each port */
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 256 avg = 128
#pragma HLS PIPELINE II = 1
            for (int j = 0; j < VW2; j++) {
#pragma HLS UNROLL
                const u32 c = c0 + j;
                if (c < d.in_c) sum[c] = sum[c] + vload(arena, arena_b, d.in_off + p * d.in_c + c, j);
            }
        }
    }
    const float count = (float)(d.in_h * d.in_w);
GAP_OUT:
    for (u32 c = 0; c < d.in_c; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 16 max = 2048 avg = 1024
#pragma HLS PIPELINE II = 1
        arena[d.out_off + c] = bw_canon(sum[c] / count);
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

extern "C" void npu_run(const uint32_t *program, const uint8_t *weights, const uint8_t *weights_b, float *arena,
                        float *arena_b, uint32_t *status, uint32_t mode) {
/* Depths only size the C/RTL co-simulation buffers (they match the smoke vectors); they do not limit the IP.
 * The weights and arena ports are widened to NPU_PORT_BITS (128 on Zynq UltraScale+ HP ports): every bulk
 * access is a sequential, aligned run in a pipelined loop, so Vitis HLS infers bursts of full-width beats.
 * weights_b and arena_b are the same buffers as weights and arena (the host writes the same addresses): four
 * masters, one per HP port, so the conv engine moves two weight beats and two activation beats per cycle. */
#pragma HLS INTERFACE mode = m_axi port = program offset = slave bundle = gmem0 depth = 4096 max_read_burst_length = 32
#pragma HLS INTERFACE mode = m_axi port = weights offset = slave bundle = gmem1 depth = 65536 max_read_burst_length = 256 max_widen_bitwidth = 128 num_read_outstanding = 16
#pragma HLS INTERFACE mode = m_axi port = weights_b offset = slave bundle = gmem2 depth = 65536 max_read_burst_length = 256 max_widen_bitwidth = 128 num_read_outstanding = 16
#pragma HLS INTERFACE mode = m_axi port = arena offset = slave bundle = gmem3 depth = 65536 max_read_burst_length = 256 max_write_burst_length = 256 max_widen_bitwidth = 128 num_read_outstanding = 16 num_write_outstanding = 16
#pragma HLS INTERFACE mode = m_axi port = arena_b offset = slave bundle = gmem4 depth = 65536 max_read_burst_length = 256 max_write_burst_length = 256 max_widen_bitwidth = 128 num_read_outstanding = 16 num_write_outstanding = 16
#pragma HLS INTERFACE mode = m_axi port = status offset = slave bundle = gmem0 depth = 1
#pragma HLS INTERFACE mode = s_axilite port = program bundle = control
#pragma HLS INTERFACE mode = s_axilite port = weights bundle = control
#pragma HLS INTERFACE mode = s_axilite port = weights_b bundle = control
#pragma HLS INTERFACE mode = s_axilite port = arena bundle = control
#pragma HLS INTERFACE mode = s_axilite port = arena_b bundle = control
#pragma HLS INTERFACE mode = s_axilite port = status bundle = control
#pragma HLS INTERFACE mode = s_axilite port = mode bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS INTERFACE mode = ap_ctrl_hs port = return

    u32 header[BW_HEADER_WORDS];
LOAD_HEADER:
    for (u32 i = 0; i < BW_HEADER_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        header[i] = program[i];
    }
    /* The whole program is checked, weight exponents included, in docs/isa.md's order (npu_format.h, which the
     * native executor's loader runs too), unless the host says this exact program already passed: the driver
     * runs BW_MODE_VALIDATE once when a program becomes resident and BW_MODE_TRUSTED_RUN per request (0.38 ms of
     * checks per ResNet-50 call saved). Any other mode checks and runs. A refused program leaves the arena
     * untouched. */
    const u32 n = header[BW_H_NUM_INSTRUCTIONS];
    const u32 arena_words = header[BW_H_ARENA_WORDS];
    const u32 weights_bytes = header[BW_H_WEIGHTS_BYTES];
    u32 w[BW_INSN_WORDS];
    Insn d;
    if (mode != BW_MODE_TRUSTED_RUN) {
        u32 s = bw_check_header(header);
        if (s == NPU_STATUS_OK) s = bw_check_io(header);
        if (s != NPU_STATUS_OK) {
            *status = s;
            return;
        }
    VALIDATE:
        for (u32 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 64
            load_insn(program, i, w);
            bw_decode_insn(w, &d);
            s = bw_check_insn(d, weights, arena_words, weights_bytes);
            if (s != NPU_STATUS_OK) {
                *status = s;
                return;
            }
        }
        if (mode == BW_MODE_VALIDATE) {
            *status = NPU_STATUS_OK;
            return;
        }
    }
EXECUTE:
    for (u32 i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 128 avg = 64
        load_insn(program, i, w);
        bw_decode_insn(w, &d);
        switch (d.op) {
        case BW_OP_CONV2D: op_conv2d(d, weights, weights_b, weights_bytes, arena, arena_b); break;
        case BW_OP_ADD: op_add(d, arena, arena_b); break;
        case BW_OP_MAXPOOL:
        case BW_OP_AVGPOOL: op_pool(d, arena, arena_b); break;
        case BW_OP_GLOBAL_AVGPOOL: op_global_avgpool(d, arena, arena_b); break;
        case BW_OP_ACTIVATION: op_activation(d, arena, arena_b); break;
        case BW_OP_CONCAT: op_concat(d, arena, arena_b); break;
        default: op_pad(d, arena, arena_b); break;
        }
    }
    *status = NPU_STATUS_OK;
}

#ifndef __SYNTHESIS__
/* C-simulation only (not part of the IP): the tiling plan the kernel makes for one CONV2D instruction, so
 * tests/fpga/test_npu_config.py can check that the performance model (brainwave/fpga/perf.py plan_conv) plans
 * exactly what the kernel runs. out: path, nb_in, nbw, taps, steps, k, kt_per_group, n_kt, rows_cap, band_rows,
 * n_bands, resident, lookahead, l_eff. */
extern "C" void npu_plan_conv(const uint32_t *insn_words, uint32_t out[14]) {
    Insn d;
    bw_decode_insn(insn_words, &d);
    const Plan p = plan_conv(d);
    const uint32_t v[14] = {p.path, p.nb_in, p.nbw, p.taps, p.steps, p.k, p.kt_per_group, p.n_kt, p.rows_cap,
                            p.band_rows, p.n_bands, (uint32_t)p.resident, (uint32_t)p.lookahead, p.l_eff};
    for (int i = 0; i < 14; i++) out[i] = v[i];
}
#endif
