/* The executor's kernels, written once over a SIMD traits type `V` and compiled once per instruction set:
 * simd_avx512vnni.cpp, simd_avx2.cpp and simd_portable.cpp each define `V` and then include this file.
 *
 * The arithmetic is docs/numerics.md's, in its order:
 *   - CONV2D input blocks are quantized once per instruction (not per tap) into int16 mantissas and an exponent;
 *   - a chunk's dot product is an exact int32 sum (V::dot: vpdpwssd, vpmaddwd or plain C), converted to float32
 *     with round to nearest even (the conversion instruction, as C's (float)isum) and scaled by an exact power of
 *     two, 2^(E_a + E_w - (M_a-1) - (M_w-1)), built by adding exponent bits. Since that product is exact,
 *     `acc + (float)isum * 2^k` may be one FMA (V::fma_exact) without changing a bit;
 *   - per output element the float32 additions run taps row-major, then chunks by ascending channel. Lanes hold
 *     different output channels and the pixels of one call are independent accumulators, so vectorizing across
 *     them never reorders an addition.
 *   - the vector unit adds the bias, then the residual, then applies the activation and stores NaN as 0x7FC00000.
 *
 * What `V` provides (16 lanes, whatever the register width):
 *   types F (float32) and I (int32); kPixels (output pixels per dense micro-kernel call) and kTiles (16-channel
 *   output tiles per call, 1 or 2);
 *   fzero fset fload fstore add mul div canon, max_first(v, m) = v > m ? v : m, min_first(v, m) = v < m ? v : m;
 *   izero iset iload (64-byte aligned) bits from_bits iand ior iadd isub imin imax, shl / shr (logical) by a
 *   constant, zero_if_gt(a, lim), hmax (the maximum in every lane), first (lane 0), round_int (nearest even),
 *   to_float (int32 -> float32, nearest even), store_i16 (32-byte aligned);
 *   dot(acc, w, pair): acc + w.lo16 * pair.lo16 + w.hi16 * pair.hi16 per lane, in int32;
 *   fma_exact(acc, a, b) = acc + a * b, for a * b exact.
 *
 * Everything here has internal linkage (see kernel_api.h for why), and uses no standard-library templates.
 */
#include <cstring>

#include "kernel_api.h"

namespace {

using bwn::Buffers;
using bwn::Conv;
using bwn::DenseSplit;
using bwn::Insn;
using bwn::Kernels;
using bwn::kLanes;
using bwn::kPairs;
using bwn::kTileWords;
using bwn::OTile;
using bwn::TileUnit;
using bwn::VBlock;

using F = V::F;
using I = V::I;

inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
inline uint32_t lanes_left(uint64_t total, uint64_t first) { return (uint32_t)min_u64(kLanes, total - first); }

/* The valid offsets [lo, hi) of a window of K cells starting at o * stride - pad on an axis of n cells; unsigned
 * arithmetic without overflow for any 32-bit fields. */
struct Window {
    uint32_t lo, hi;
};

inline Window window(uint64_t o, uint32_t stride, uint32_t pad, uint32_t K, uint32_t n) {
    const uint64_t start = o * stride; /* cell k sits at start + k - pad */
    const uint64_t end = (uint64_t)n + pad;
    Window w;
    w.lo = start >= pad ? 0 : (uint32_t)min_u64(K, pad - start);
    w.hi = start >= end ? 0 : (uint32_t)min_u64(K, end - start);
    if (w.hi < w.lo) w.hi = w.lo;
    return w;
}

/* Loads and stores of the first n <= 16 lanes; lanes past n read as +0.0. */
inline F load_n(const float *p, uint32_t n) {
    if (n >= (uint32_t)kLanes) return V::fload(p);
    alignas(64) float t[kLanes] = {};
    memcpy(t, p, n * sizeof(float));
    return V::fload(t);
}

inline void store_n(float *p, F v, uint32_t n) {
    if (n >= (uint32_t)kLanes) {
        V::fstore(p, v);
        return;
    }
    alignas(64) float t[kLanes];
    V::fstore(t, v);
    memcpy(p, t, n * sizeof(float));
}

/* ReLU is y > 0 ? y : +0.0 (NaN and -0.0 give +0.0); ReLU6 then r < 6 ? r : 6: npu_format.h's bw_activate, which
 * the HLS kernel runs, on 16 lanes at once. */
inline F activate(F y, uint32_t act) {
    if (act == BW_ACT_NONE) return y;
    F r = V::max_first(y, V::fzero());
    if (act == BW_ACT_RELU6) r = V::min_first(r, V::fset(6.0f));
    return r;
}

/* Every value an instruction writes: activation, canonical NaN, store. */
inline void finish(float *dst, F y, uint32_t act, uint32_t n) { store_n(dst, V::canon(activate(y, act)), n); }

/* ---------------------------------------------------------------------------------------------------------- */
/* Quantization (docs/numerics.md "Quantizing a block") */

/* The constants of one precision's quantizer, built once per call of quantize(). */
struct QuantScale {
    F lim, neg_lim;  /* +-(2^M - 1) */
    I inv_step_base; /* (M-1) + 254: minus E + 127 it is the exponent field of 2^(M-1-E) */
    I step_base;     /* 1 - M: plus E + 127 it is the exponent field of 2^(E-(M-1)) */
};

inline QuantScale quant_scale(int mbits) {
    const float lim = (float)((1 << mbits) - 1);
    return QuantScale{V::fset(lim), V::fset(-lim), V::iset(mbits - 1 + 254), V::iset(1 - mbits)};
}

/* Quantizes 16 lanes (zero past the tensor's channels): writes the mantissas and returns E + 127, the biased
 * exponent, in every lane. The kernel (npu_kernel.cpp quantize_block) shifts integers, lane by lane; here
 * x * 2^(M-1-E) is a power-of-two scaling, exact unless it underflows (and then far below 0.5), so rounding it to
 * nearest even and saturating gives the same mantissas. The exponent stays in vector registers, and every power of
 * two is built from its bits. */
inline I quantize_block(F x, const QuantScale &qs, I &m) {
    const I u = V::bits(x);
    I a = V::iand(u, V::iset(0x7FFFFFFF));
    a = V::zero_if_gt(a, V::iset(0x7F800000)); /* NaN -> 0 */
    a = V::imin(a, V::iset(0x7F7FFFFF));       /* +-Inf -> +-FLT_MAX */
    /* floor(log2(amax)) + 127 is amax's exponent field; zero and subnormal blocks have field 0 and clamp to
     * E_MIN like the spec's, since their true exponent is below -126 */
    const I biased = V::imax(V::imin(V::shr(V::hmax(a), 23), V::iset(BW_EXP_MAX + 127)), V::iset(BW_EXP_MIN + 127));
    const F sanitized = V::from_bits(V::ior(a, V::iand(u, V::iset((int32_t)0x80000000u))));
    const F q = V::mul(sanitized, V::from_bits(V::shl(V::isub(qs.inv_step_base, biased), 23)));
    /* saturate before converting (q can pass 2^31 when E is clamped at E_MAX); lim is an integer, so clamping
     * first and rounding after equals the spec's rounding and then clamping */
    m = V::round_int(V::max_first(V::min_first(q, qs.lim), qs.neg_lim));
    return biased;
}

/* Input pixels [begin, end) of a CONV2D: int16 mantissas and exponent bits (dense, grouped), or the dequantized
 * values m * 2^(E-(M-1)), exact floats (depthwise). Fields are copied to locals first: the stores below could
 * alias them as far as the compiler knows, and it would reload them for every block. */
void quantize(const Conv &c, const Buffers &b, size_t begin, size_t end) {
    const Insn &d = *c.d;
    const QuantScale qs = quant_scale(c.mbits);
    const uint32_t nb = c.nb, in_c = d.in_c;
    const float *in = b.arena + d.in_off;
    int16_t *const qm = b.qm;
    int32_t *const qe = b.qe;
    float *const qf = c.wdw ? b.qf : nullptr;
    for (size_t p = begin; p < end; ++p) {
        for (uint32_t k = 0; k < nb; ++k) {
            const uint64_t blk = (uint64_t)p * nb + k;
            const uint64_t c0 = (uint64_t)k * kLanes;
            I m;
            const I biased = quantize_block(load_n(in + (uint64_t)p * in_c + c0, lanes_left(in_c, c0)), qs, m);
            if (qf) {
                const F step = V::from_bits(V::shl(V::iadd(biased, qs.step_base), 23));
                V::fstore(qf + blk * kLanes, V::mul(V::to_float(m), step));
            } else {
                V::store_i16(qm + blk * kLanes, m);
                qe[blk] = V::first(V::shl(biased, 23));
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* CONV2D, dense and grouped: V::kPixels output pixels x T tiles of 16 output channels per call */

/* The order of the virtual blocks inside one tap: ascending, as the spec fixes. The BW_MUTATE_ORDER build (tests
 * only) swaps the first two at every tap but the first, so the tests can show that they catch a wrong order. */
inline uint32_t block_order(uint32_t i, uint32_t nvb, uint64_t tap) {
#ifdef BW_MUTATE_ORDER
    if (tap > 0 && nvb >= 2 && i < 2) return 1 - i;
#else
    (void)nvb;
    (void)tap;
#endif
    return i;
}

/* One int16 pair step: every pixel's pair j of its activation block against every tile's weight vector j. */
template <int P, int T>
inline void mac_pair(I (&s)[P][T], const int32_t *const (&w)[T], const int16_t *const (&a)[P], int j) {
    for (int t = 0; t < T; ++t) {
        const I wv = V::iload(w[t] + j * kLanes);
        for (int p = 0; p < P; ++p) {
            int32_t pair;
            memcpy(&pair, a[p] + 2 * j, sizeof pair);
            s[p][t] = V::dot(s[p][t], wv, pair);
        }
    }
}

/* Pixel geometry of one dense micro-kernel call: where each pixel's window starts and which taps are inside. */
template <int P>
struct PixelWindows {
    uint64_t row0[P], col0[P]; /* oy*sh - pt and ox*sw - pl, modulo 2^64 */
    Window y[P], x[P];
};

template <int P>
inline PixelWindows<P> pixel_windows(const Insn &d, uint64_t pix0) {
    PixelWindows<P> g;
    uint64_t oy = pix0 / d.out_w, ox = pix0 % d.out_w; /* one division, then step along the row */
    for (int p = 0; p < P; ++p) {
        g.row0[p] = oy * d.sh - d.pt;
        g.col0[p] = ox * d.sw - d.pl;
        g.y[p] = window(oy, d.sh, d.pt, d.kh, d.in_h);
        g.x[p] = window(ox, d.sw, d.pl, d.kw, d.in_w);
        if (++ox == d.out_w) {
            ox = 0;
            ++oy;
        }
    }
    return g;
}

/* P consecutive output pixels (from pix0) x T tiles. */
template <int P, int T>
void dense_call(const Conv &c, const Buffers &b, const OTile *tiles, uint64_t pix0) {
    const Insn &d = *c.d;
    const PixelWindows<P> g = pixel_windows<P>(d, pix0);
    const uint64_t zero_pixel = (uint64_t)d.in_h * d.in_w; /* out-of-input taps read it: their partial is +0.0 */
    const uint32_t nvb = tiles[0].nvb;
    const VBlock *vbl = tiles[0].vb;
    F acc[P][T];
    for (int p = 0; p < P; ++p)
        for (int t = 0; t < T; ++t) acc[p][t] = V::fzero();

    for (uint32_t ky = 0; ky < d.kh; ++ky) {
        for (uint32_t kx = 0; kx < d.kw; ++kx) {
            const int16_t *am[P];
            const int32_t *ae[P];
            bool any = false;
            for (int p = 0; p < P; ++p) {
                const bool in = ky >= g.y[p].lo && ky < g.y[p].hi && kx >= g.x[p].lo && kx < g.x[p].hi;
                const uint64_t q = in ? (g.row0[p] + ky) * d.in_w + g.col0[p] + kx : zero_pixel;
                any |= in;
                am[p] = b.qm + q * c.nb * kLanes;
                ae[p] = b.qe + q * c.nb;
            }
            if (!any) continue; /* skipping a tap is the spec; adding its +0.0 partials would give the same bytes */
            const uint64_t tap = (uint64_t)ky * d.kw + kx;
            for (uint32_t i = 0; i < nvb; ++i) {
                const uint32_t k = block_order(i, nvb, tap);
                const VBlock v = vbl[k];
                const int32_t *w[T];
                for (int t = 0; t < T; ++t) w[t] = tiles[t].w + (tap * nvb + k) * kTileWords;
                const int16_t *a[P];
                for (int p = 0; p < P; ++p) a[p] = am[p] + v.ab * kLanes;
                I s[P][T];
                for (int p = 0; p < P; ++p)
                    for (int t = 0; t < T; ++t) s[p][t] = V::izero();
                if (v.j0 == 0 && v.j1 == (uint32_t)kPairs) {
#pragma GCC unroll 8
                    for (int j = 0; j < kPairs; ++j) mac_pair<P, T>(s, w, a, j);
                } else {
                    for (int j = (int)v.j0; j < (int)v.j1; ++j) mac_pair<P, T>(s, w, a, j);
                }
                for (int t = 0; t < T; ++t) {
                    const I wexp = V::iload(w[t] + kPairs * kLanes); /* (E_w - (M_a-1) - (M_w-1)) << 23 */
                    for (int p = 0; p < P; ++p) {
                        const F scale = V::from_bits(V::iadd(wexp, V::iset(ae[p][v.ab])));
                        acc[p][t] = V::fma_exact(acc[p][t], V::to_float(s[p][t]), scale);
                    }
                }
            }
        }
    }

    for (int p = 0; p < P; ++p) {
        const uint64_t pix = (pix0 + p) * d.out_c;
        for (int t = 0; t < T; ++t) {
            const uint32_t o0 = tiles[t].o0, n = tiles[t].n;
            F y = V::add(acc[p][t], V::fload(c.bias + o0));
            if (d.has_res) y = V::add(y, load_n(b.arena + d.res_off + pix + o0, n));
            finish(b.arena + d.out_off + pix + o0, y, d.act, n);
        }
    }
}

/* One unit's pixels [first, last): whole calls of V::kPixels, then one call for the rest (P = last - first). */
template <int P = V::kPixels>
void dense_pixels(const Conv &c, const Buffers &b, TileUnit u, uint64_t first, uint64_t last) {
    for (; first + P <= last; first += P) {
        if (u.count == 2 && V::kTiles == 2) {
            dense_call<P, 2>(c, b, c.tiles + u.first, first);
        } else {
            for (uint32_t t = 0; t < u.count; ++t) dense_call<P, 1>(c, b, c.tiles + u.first + t, first);
        }
    }
    if constexpr (P > 1) {
        if (first < last) dense_pixels<P - 1>(c, b, u, first, last);
    }
}

void conv_dense(const Conv &c, const Buffers &b, DenseSplit s, size_t begin, size_t end) {
    const uint64_t npix = (uint64_t)c.d->out_h * c.d->out_w;
    for (size_t item = begin; item < end; ++item) {
        const uint64_t first = (uint64_t)(item % s.nchunks) * s.chunk_pixels;
        dense_pixels(c, b, c.units[item / s.nchunks], first, min_u64(npix, first + s.chunk_pixels));
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* CONV2D, depthwise: every chunk is one channel, so its partial is one product of two exact floats; the float32
 * multiply rounds it once to nearest even, exactly as (float)isum * 2^k does (bfp20), then one float32 add. */

/* NK consecutive channel blocks of one output pixel: NK independent accumulators, so the float32 adds of
 * different blocks overlap instead of waiting on one another (each block still adds its taps in order). */
template <int NK>
void depthwise_blocks(const Conv &c, const Buffers &b, uint64_t pix, uint32_t k0) {
    const Insn &d = *c.d;
    const uint64_t cp = (uint64_t)c.nb * kLanes;
    const uint64_t oy = pix / d.out_w, ox = pix % d.out_w;
    const uint64_t row0 = oy * d.sh - d.pt, col0 = ox * d.sw - d.pl;
    const Window wy = window(oy, d.sh, d.pt, d.kh, d.in_h), wx = window(ox, d.sw, d.pl, d.kw, d.in_w);
    F acc[NK];
    for (int j = 0; j < NK; ++j) acc[j] = V::fzero();
    for (uint32_t ky = wy.lo; ky < wy.hi; ++ky) {
        const uint64_t arow = ((row0 + ky) * d.in_w + col0) * cp + k0 * kLanes; /* index of kx = 0, mod 2^64 */
        const uint64_t wrow = (uint64_t)ky * d.kw * cp + k0 * kLanes;
        for (uint32_t kx = wx.lo; kx < wx.hi; ++kx) {
            const float *a = b.qf + (arow + kx * cp), *w = c.wdw + (wrow + kx * cp);
            for (int j = 0; j < NK; ++j) acc[j] = V::add(acc[j], V::mul(V::fload(a + j * kLanes), V::fload(w + j * kLanes)));
        }
    }
    const uint64_t out = pix * d.out_c;
    for (int j = 0; j < NK; ++j) {
        const uint32_t o0 = (k0 + j) * kLanes, n = lanes_left(d.out_c, o0);
        F y = V::add(acc[j], V::fload(c.bias + o0));
        if (d.has_res) y = V::add(y, load_n(b.arena + d.res_off + out + o0, n));
        finish(b.arena + d.out_off + out + o0, y, d.act, n);
    }
}

void conv_depthwise(const Conv &c, const Buffers &b, size_t begin, size_t end) {
    for (size_t pix = begin; pix < end; ++pix) {
        uint32_t k = 0;
        for (; k + 4 <= c.nb; k += 4) depthwise_blocks<4>(c, b, pix, k);
        for (; k + 2 <= c.nb; k += 2) depthwise_blocks<2>(c, b, pix, k);
        if (k < c.nb) depthwise_blocks<1>(c, b, pix, k);
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* The other instructions */

/* ADD (a + b) and ACTIVATION, elements [begin, end). The output may be one of the inputs (same offset): each
 * vector is read before it is written. */
void eltwise(const Insn &d, float *arena, size_t begin, size_t end) {
    const float *a = arena + d.in_off;
    const float *b2 = d.op == BW_OP_ADD ? arena + d.in2_off : nullptr;
    for (size_t i = begin; i < end; i += kLanes) {
        const uint32_t n = lanes_left(end, i);
        F y = load_n(a + i, n);
        if (b2) y = V::add(y, load_n(b2 + i, n));
        finish(arena + d.out_off + i, y, d.act, n);
    }
}

void pad(const Insn &d, float *arena, size_t begin, size_t end) {
    for (size_t pix = begin; pix < end; ++pix) {
        const uint64_t iy = pix / d.out_w - d.pt, ix = pix % d.out_w - d.pl; /* modulo 2^64: negative is huge */
        const bool inside = iy < d.in_h && ix < d.in_w;
        const float *src = arena + d.in_off + (inside ? (iy * d.in_w + ix) * d.in_c : 0);
        float *dst = arena + d.out_off + (uint64_t)pix * d.out_c;
        for (uint32_t c0 = 0; c0 < d.out_c; c0 += kLanes) {
            const uint32_t n = lanes_left(d.out_c, c0);
            store_n(dst + c0, inside ? V::canon(load_n(src + c0, n)) : V::fzero(), n);
        }
    }
}

/* CONCAT, output pixels [begin, end): the first operand's in_c channels, then the second's, copied (NaNs canonical). */
void concat(const Insn &d, float *arena, size_t begin, size_t end) {
    const uint32_t cb = d.out_c - d.in_c;
    for (size_t pix = begin; pix < end; ++pix) {
        const float *a = arena + d.in_off + (uint64_t)pix * d.in_c, *b = arena + d.in2_off + (uint64_t)pix * cb;
        float *dst = arena + d.out_off + (uint64_t)pix * d.out_c;
        for (uint32_t c0 = 0; c0 < d.in_c; c0 += kLanes) {
            const uint32_t n = lanes_left(d.in_c, c0);
            store_n(dst + c0, V::canon(load_n(a + c0, n)), n);
        }
        for (uint32_t c0 = 0; c0 < cb; c0 += kLanes) {
            const uint32_t n = lanes_left(cb, c0);
            store_n(dst + d.in_c + c0, V::canon(load_n(b + c0, n)), n);
        }
    }
}

/* MAXPOOL (first valid cell, then v > m ? v : m) and AVGPOOL (row-major float32 sum / count); cells outside the
 * input are skipped, a window without any writes +0.0. */
void pool(const Insn &d, float *arena, size_t begin, size_t end) {
    const bool is_max = d.op == BW_OP_MAXPOOL;
    for (size_t pix = begin; pix < end; ++pix) {
        const uint64_t oy = pix / d.out_w, ox = pix % d.out_w;
        const uint64_t row0 = oy * d.sh - d.pt, col0 = ox * d.sw - d.pl;
        const Window wy = window(oy, d.sh, d.pt, d.kh, d.in_h), wx = window(ox, d.sw, d.pl, d.kw, d.in_w);
        const uint32_t count = (wy.hi - wy.lo) * (wx.hi - wx.lo); /* at most in_h * in_w < 2^32 */
        float *dst = arena + d.out_off + (uint64_t)pix * d.out_c;
        for (uint32_t c0 = 0; c0 < d.out_c; c0 += kLanes) {
            const uint32_t n = lanes_left(d.out_c, c0);
            F y = V::fzero();
            bool first = true;
            for (uint32_t ky = wy.lo; ky < wy.hi; ++ky) {
                for (uint32_t kx = wx.lo; kx < wx.hi; ++kx) {
                    const F v = load_n(arena + d.in_off + ((row0 + ky) * d.in_w + col0 + kx) * d.in_c + c0, n);
                    y = !is_max ? V::add(y, v) : (first ? v : V::max_first(v, y));
                    first = false;
                }
            }
            if (!is_max && count) y = V::div(y, V::fset((float)count));
            store_n(dst + c0, V::canon(y), n);
        }
    }
}

/* GLOBAL_AVGPOOL, channel blocks [begin, end): float32 sum over the pixels row-major, then / (float)(H*W). */
void global_avgpool(const Insn &d, float *arena, size_t begin, size_t end) {
    const uint64_t npix = (uint64_t)d.in_h * d.in_w;
    const F count = V::fset((float)(uint32_t)npix);
    for (size_t k = begin; k < end; ++k) {
        const uint32_t c0 = (uint32_t)k * kLanes, n = lanes_left(d.in_c, c0);
        F sum = V::fzero();
        for (uint64_t p = 0; p < npix; ++p) sum = V::add(sum, load_n(arena + d.in_off + p * d.in_c + c0, n));
        store_n(arena + d.out_off + c0, V::canon(V::div(sum, count)), n);
    }
}

constexpr Kernels make_kernels(const char *name) {
    return Kernels{name, V::kPixels, quantize, conv_dense, conv_depthwise, eltwise, pad, pool, global_avgpool, concat};
}

} // namespace
