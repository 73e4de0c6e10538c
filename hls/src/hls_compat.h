/* The Vitis HLS types the NPU kernel uses, for builds without the AMD headers.
 *
 * Under Vitis HLS (synthesis, or its own C simulation) the real <ap_int.h> and <hls_stream.h> are included and
 * nothing below is compiled. Elsewhere (g++ C-simulation, libnpu.so) this file provides a C-SIM STAND-IN for the
 * small subset the kernel uses; it is not the AMD library and models none of its other features:
 *   - ap_uint<W> (W <= 128): an unsigned W-bit value (128-bit storage), wrapped to W bits on every store;
 *     range(hi, lo) reads a bit field; set_range(hi, lo, v) writes one (the AMD type spells that
 *     `x.range(hi, lo) = v`; the kernel uses the helper NPU_SET_RANGE, defined for both).
 *   - hls::stream<T, DEPTH>: an unbounded FIFO (std::deque). In C simulation a dataflow region runs its
 *     processes one after the other, so a stream holds everything its producer wrote; DEPTH only matters in
 *     hardware. read() on an empty stream aborts (a hardware deadlock).
 * Why a stand-in: the AMD headers (HLS_arbitrary_Precision_Types) are not installable from PyPI or Debian here.
 */
#ifndef BW_HLS_COMPAT_H
#define BW_HLS_COMPAT_H

#include <stdint.h>

#if defined(__SYNTHESIS__) || defined(NPU_USE_VITIS_HEADERS)
#include <ap_int.h>
#include <hls_stream.h>
#define NPU_SET_RANGE(x, hi, lo, v) ((x).range((hi), (lo)) = (v))
#define NPU_HAVE_VITIS_HEADERS 1
#else

#include <cstdio>
#include <cstdlib>
#include <deque>

template <int W>
class ap_uint {
    static_assert(W >= 1 && W <= 128, "the C-sim stand-in covers ap_uint<1..128>");
    typedef unsigned __int128 u128;
    u128 v_;
    static u128 mask() { return W == 128 ? ~(u128)0 : (((u128)1 << W) - 1); }

public:
    ap_uint() : v_(0) {}
    ap_uint(int x) : v_((u128)(unsigned)x & mask()) {}
    ap_uint(unsigned x) : v_((u128)x & mask()) {}
    ap_uint(unsigned long long x) : v_((u128)x & mask()) {}
    /* bits [hi, lo] as an integer (hi - lo < 64) */
    uint64_t range(int hi, int lo) const { return (uint64_t)((v_ >> lo) & (((u128)1 << (hi - lo + 1)) - 1)); }
    void set_range(int hi, int lo, uint64_t x) {
        u128 m = (((u128)1 << (hi - lo + 1)) - 1) << lo;
        v_ = ((v_ & ~m) | (((u128)x << lo) & m)) & mask();
    }
    uint64_t to_uint64() const { return (uint64_t)v_; }
};

#define NPU_SET_RANGE(x, hi, lo, v) ((x).set_range((hi), (lo), (v)))

namespace hls {
template <typename T, int DEPTH = 2>
class stream {
    std::deque<T> q_;

public:
    stream() {}
    explicit stream(const char *) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;
    void write(const T &x) { q_.push_back(x); }
    T read() {
        if (q_.empty()) {
            std::fprintf(stderr, "hls::stream (C-sim stand-in): read from an empty stream\n");
            std::abort();
        }
        T x = q_.front();
        q_.pop_front();
        return x;
    }
    bool empty() const { return q_.empty(); }
    bool full() const { return false; }
    size_t size() const { return q_.size(); }
};
} // namespace hls

#endif

#endif
