/* The kernels in plain C++ (the compiler may auto-vectorize the 16-lane loops for the baseline target): the
 * reference path for any CPU, and the one the others must match byte for byte. No FMA: fma_exact multiplies and
 * then adds, which is the same result because the product is exact. */
#include <cstring>

#include "kernel_api.h"
#include "npu_format.h"

namespace {

struct V {
    static constexpr int kPixels = 4;
    static constexpr int kTiles = 1;
    struct F {
        float v[bwn::kLanes];
    };
    struct I {
        int32_t v[bwn::kLanes];
    };

    static F fzero() { return fset(0.0f); }
    static F fset(float x) {
        F r;
        for (float &v : r.v) v = x;
        return r;
    }
    static F fload(const float *p) {
        F r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = p[l];
        return r;
    }
    static void fstore(float *p, const F &x) {
        for (int l = 0; l < bwn::kLanes; ++l) p[l] = x.v[l];
    }
    template <class Op>
    static F fmap(const F &a, const F &b, Op op) {
        F r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = op(a.v[l], b.v[l]);
        return r;
    }
    template <class Op>
    static I imap(const I &a, const I &b, Op op) {
        I r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = op(a.v[l], b.v[l]);
        return r;
    }
    static F add(const F &a, const F &b) { return fmap(a, b, [](float x, float y) { return x + y; }); }
    static F mul(const F &a, const F &b) { return fmap(a, b, [](float x, float y) { return x * y; }); }
    static F div(const F &a, const F &b) { return fmap(a, b, [](float x, float y) { return x / y; }); }
    static F max_first(const F &v, const F &m) { return fmap(v, m, [](float x, float y) { return x > y ? x : y; }); }
    static F min_first(const F &v, const F &m) { return fmap(v, m, [](float x, float y) { return x < y ? x : y; }); }
    static F canon(const F &y) {
        F r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = bw_canon(y.v[l]);
        return r;
    }

    static I izero() { return iset(0); }
    static I iset(int32_t x) {
        I r;
        for (int32_t &v : r.v) v = x;
        return r;
    }
    static I iload(const int32_t *p) {
        I r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = p[l];
        return r;
    }
    static I bits(const F &x) {
        I r;
        memcpy(r.v, x.v, sizeof r.v);
        return r;
    }
    static F from_bits(const I &x) {
        F r;
        memcpy(r.v, x.v, sizeof r.v);
        return r;
    }
    static I iand(const I &a, const I &b) { return imap(a, b, [](int32_t x, int32_t y) { return x & y; }); }
    static I ior(const I &a, const I &b) { return imap(a, b, [](int32_t x, int32_t y) { return x | y; }); }
    static I iadd(const I &a, const I &b) {
        return imap(a, b, [](int32_t x, int32_t y) { return (int32_t)((uint32_t)x + (uint32_t)y); });
    }
    static I isub(const I &a, const I &b) {
        return imap(a, b, [](int32_t x, int32_t y) { return (int32_t)((uint32_t)x - (uint32_t)y); });
    }
    static I imin(const I &a, const I &b) { return imap(a, b, [](int32_t x, int32_t y) { return x < y ? x : y; }); }
    static I imax(const I &a, const I &b) { return imap(a, b, [](int32_t x, int32_t y) { return x > y ? x : y; }); }
    static I shl(const I &a, int n) { return imap(a, a, [n](int32_t x, int32_t) { return (int32_t)((uint32_t)x << n); }); }
    static I shr(const I &a, int n) { return imap(a, a, [n](int32_t x, int32_t) { return (int32_t)((uint32_t)x >> n); }); }
    static I zero_if_gt(const I &a, const I &lim) { return imap(a, lim, [](int32_t x, int32_t y) { return x > y ? 0 : x; }); }
    static I hmax(const I &a) {
        int32_t m = a.v[0];
        for (int32_t v : a.v) m = v > m ? v : m;
        return iset(m);
    }
    static int32_t first(const I &a) { return a.v[0]; }
    static I round_int(const F &x) {
        I r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = (int32_t)__builtin_nearbyintf(x.v[l]); /* nearest even */
        return r;
    }
    static F to_float(const I &x) {
        F r;
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = (float)x.v[l];
        return r;
    }
    static void store_i16(int16_t *p, const I &m) {
        for (int l = 0; l < bwn::kLanes; ++l) p[l] = (int16_t)m.v[l];
    }

    static I dot(const I &acc, const I &w, int32_t pair) {
        int16_t w16[2 * bwn::kLanes]; /* lane l: its low int16 at 2l, its high int16 at 2l + 1 (little-endian) */
        memcpy(w16, w.v, sizeof w16);
        const int16_t a0 = (int16_t)(pair & 0xFFFF), a1 = (int16_t)(pair >> 16);
        I r;
        /* kept a loop (GCC would otherwise unroll it completely before its vectorizer runs): vectorized, it takes
         * ~40% fewer instructions on x86-64's baseline SSE2 */
#pragma GCC unroll 1
        for (int l = 0; l < bwn::kLanes; ++l) r.v[l] = acc.v[l] + w16[2 * l] * a0 + w16[2 * l + 1] * a1;
        return r;
    }
    static F fma_exact(const F &acc, const F &a, const F &b) { return add(acc, mul(a, b)); }
};

} // namespace

#include "kernels.h"

const bwn::Kernels *bwn::kernels_portable() {
    static constexpr Kernels k = make_kernels("portable");
    return &k;
}
