/* The kernels on AVX-512 with VNNI: 16 lanes in one zmm register; the chunk dot product is vpdpwssd (32 int16
 * multiply-adds per instruction into 16 int32 lanes). Built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni
 * -mfma (Makefile); the runtime only calls it when CPUID reports those features. */
#include "kernel_api.h"
#include "npu_format.h"

#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__FMA__)
#include <immintrin.h>

namespace {

struct V {
    /* 6 pixels x 2 tiles: 12 int32 and 12 float32 accumulators, independent chains that hide vpdpwssd latency */
    static constexpr int kPixels = 6;
    static constexpr int kTiles = 2;
    typedef __m512 F;
    typedef __m512i I;

    static F fzero() { return _mm512_setzero_ps(); }
    static F fset(float x) { return _mm512_set1_ps(x); }
    static F fload(const float *p) { return _mm512_loadu_ps(p); }
    static void fstore(float *p, F v) { _mm512_storeu_ps(p, v); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static F max_first(F v, F m) { return _mm512_max_ps(v, m); } /* vmaxps returns its second operand unless v > m */
    static F min_first(F v, F m) { return _mm512_min_ps(v, m); }
    static F canon(F y) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q), y,
                                    _mm512_castsi512_ps(_mm512_set1_epi32(BW_CANONICAL_NAN)));
    }

    static I izero() { return _mm512_setzero_si512(); }
    static I iset(int32_t x) { return _mm512_set1_epi32(x); }
    static I iload(const int32_t *p) { return _mm512_load_si512(p); }
    static I bits(F x) { return _mm512_castps_si512(x); }
    static F from_bits(I x) { return _mm512_castsi512_ps(x); }
    static I iand(I a, I b) { return _mm512_and_si512(a, b); }
    static I ior(I a, I b) { return _mm512_or_si512(a, b); }
    static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
    static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static I imin(I a, I b) { return _mm512_min_epi32(a, b); }
    static I imax(I a, I b) { return _mm512_max_epi32(a, b); }
    static I shl(I a, int n) { return _mm512_slli_epi32(a, n); }
    static I shr(I a, int n) { return _mm512_srli_epi32(a, n); }
    static I zero_if_gt(I a, I lim) { return _mm512_maskz_mov_epi32(_mm512_cmple_epi32_mask(a, lim), a); }
    static I hmax(I a) { /* butterfly: swap 256-bit halves, 128-bit quarters, 64-bit and 32-bit pairs */
        a = _mm512_max_epi32(a, _mm512_shuffle_i32x4(a, a, 0x4E));
        a = _mm512_max_epi32(a, _mm512_shuffle_i32x4(a, a, 0xB1));
        a = _mm512_max_epi32(a, _mm512_shuffle_epi32(a, (_MM_PERM_ENUM)0x4E));
        return _mm512_max_epi32(a, _mm512_shuffle_epi32(a, (_MM_PERM_ENUM)0xB1));
    }
    static int32_t first(I a) { return _mm_cvtsi128_si32(_mm512_castsi512_si128(a)); }
    static I round_int(F x) { return _mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
    static F to_float(I x) { return _mm512_cvtepi32_ps(x); }
    static void store_i16(int16_t *p, I m) { _mm256_store_si256((__m256i *)p, _mm512_cvtepi32_epi16(m)); }

    static I dot(I acc, I w, int32_t pair) { return _mm512_dpwssd_epi32(acc, w, _mm512_set1_epi32(pair)); }
    static F fma_exact(F acc, F a, F b) { return _mm512_fmadd_ps(a, b, acc); }
};

} // namespace

#include "kernels.h"

const bwn::Kernels *bwn::kernels_avx512vnni() {
    static constexpr Kernels k = make_kernels("avx512vnni");
    return &k;
}

#else

const bwn::Kernels *bwn::kernels_avx512vnni() { return nullptr; }

#endif
