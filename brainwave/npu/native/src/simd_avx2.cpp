/* The kernels on AVX2 + FMA: 16 lanes as two ymm halves; the chunk dot product is vpmaddwd (16 int16 multiplies
 * into 8 int32 pair sums) plus vpaddd. Built with -mavx2 -mfma (Makefile); used when CPUID reports both. */
#include "kernel_api.h"
#include "npu_format.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace {

struct V {
    /* 16 ymm registers: 3 pixels x 1 tile is 6 int32 + 6 float32 accumulator halves, 2 weight halves, 1 pair */
    static constexpr int kPixels = 3;
    static constexpr int kTiles = 1;
    struct F {
        __m256 lo, hi;
    };
    struct I {
        __m256i lo, hi;
    };

    static F fzero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
    static F fset(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
    static F fload(const float *p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
    static void fstore(float *p, F v) {
        _mm256_storeu_ps(p, v.lo);
        _mm256_storeu_ps(p + 8, v.hi);
    }
    static F add(F a, F b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
    static F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
    static F div(F a, F b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
    /* vmaxps / vminps return their second operand unless the comparison holds */
    static F max_first(F v, F m) { return {_mm256_max_ps(v.lo, m.lo), _mm256_max_ps(v.hi, m.hi)}; }
    static F min_first(F v, F m) { return {_mm256_min_ps(v.lo, m.lo), _mm256_min_ps(v.hi, m.hi)}; }
    static __m256 canon8(__m256 y) {
        return _mm256_blendv_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(BW_CANONICAL_NAN)),
                                _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
    }
    static F canon(F y) { return {canon8(y.lo), canon8(y.hi)}; }

    static I izero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
    static I iset(int32_t x) { return {_mm256_set1_epi32(x), _mm256_set1_epi32(x)}; }
    static I iload(const int32_t *p) {
        return {_mm256_load_si256((const __m256i *)p), _mm256_load_si256((const __m256i *)(p + 8))};
    }
    static I bits(F x) { return {_mm256_castps_si256(x.lo), _mm256_castps_si256(x.hi)}; }
    static F from_bits(I x) { return {_mm256_castsi256_ps(x.lo), _mm256_castsi256_ps(x.hi)}; }
    static I iand(I a, I b) { return {_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)}; }
    static I ior(I a, I b) { return {_mm256_or_si256(a.lo, b.lo), _mm256_or_si256(a.hi, b.hi)}; }
    static I iadd(I a, I b) { return {_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)}; }
    static I isub(I a, I b) { return {_mm256_sub_epi32(a.lo, b.lo), _mm256_sub_epi32(a.hi, b.hi)}; }
    static I imin(I a, I b) { return {_mm256_min_epi32(a.lo, b.lo), _mm256_min_epi32(a.hi, b.hi)}; }
    static I imax(I a, I b) { return {_mm256_max_epi32(a.lo, b.lo), _mm256_max_epi32(a.hi, b.hi)}; }
    static I shl(I a, int n) { return {_mm256_slli_epi32(a.lo, n), _mm256_slli_epi32(a.hi, n)}; }
    static I shr(I a, int n) { return {_mm256_srli_epi32(a.lo, n), _mm256_srli_epi32(a.hi, n)}; }
    static I zero_if_gt(I a, I lim) {
        return {_mm256_andnot_si256(_mm256_cmpgt_epi32(a.lo, lim.lo), a.lo),
                _mm256_andnot_si256(_mm256_cmpgt_epi32(a.hi, lim.hi), a.hi)};
    }
    static I hmax(I a) { /* the halves, then a butterfly: swap 128-bit lanes, 64-bit and 32-bit pairs */
        __m256i m = _mm256_max_epi32(a.lo, a.hi);
        m = _mm256_max_epi32(m, _mm256_permute2x128_si256(m, m, 1));
        m = _mm256_max_epi32(m, _mm256_shuffle_epi32(m, 0x4E));
        m = _mm256_max_epi32(m, _mm256_shuffle_epi32(m, 0xB1));
        return {m, m};
    }
    static int32_t first(I a) { return _mm_cvtsi128_si32(_mm256_castsi256_si128(a.lo)); }
    static __m256i round8(__m256 x) {
        return _mm256_cvttps_epi32(_mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    static I round_int(F x) { return {round8(x.lo), round8(x.hi)}; }
    static F to_float(I x) { return {_mm256_cvtepi32_ps(x.lo), _mm256_cvtepi32_ps(x.hi)}; }
    static void store_i16(int16_t *p, I m) {
        /* packssdw works per 128-bit half: [lo0-3 hi0-3 | lo4-7 hi4-7]; the permute restores lane order */
        _mm256_store_si256((__m256i *)p, _mm256_permute4x64_epi64(_mm256_packs_epi32(m.lo, m.hi), 0xD8));
    }

    static I dot(I acc, I w, int32_t pair) {
        const __m256i a = _mm256_set1_epi32(pair);
        I r = {_mm256_add_epi32(acc.lo, _mm256_madd_epi16(w.lo, a)), _mm256_add_epi32(acc.hi, _mm256_madd_epi16(w.hi, a))};
        /* An empty asm that "changes" the sums keeps GCC from computing all eight pair products of a block first
         * and adding them as a tree (legal for integers), which spilled most of them to the stack: ResNet-50 ran
         * ~35% slower on this path. It emits no instruction. */
        __asm__("" : "+x"(r.lo), "+x"(r.hi));
        return r;
    }
    static F fma_exact(F acc, F a, F b) { return {_mm256_fmadd_ps(a.lo, b.lo, acc.lo), _mm256_fmadd_ps(a.hi, b.hi, acc.hi)}; }
};

} // namespace

#include "kernels.h"

const bwn::Kernels *bwn::kernels_avx2() {
    static constexpr Kernels k = make_kernels("avx2");
    return &k;
}

#else

const bwn::Kernels *bwn::kernels_avx2() { return nullptr; }

#endif
