/* A loaded program: the kernel's validation, the instructions decoded, every CONV2D's weights repacked for the
 * kernels (kernel_api.h), and what a run's memory must look like. Built once by build_plan; read-only afterwards,
 * so any number of runs may share it. */
#ifndef BWN_PLAN_H
#define BWN_PLAN_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "kernel_api.h"

namespace bwn {

/* A zero-initialized array on a 64-byte boundary (one cache line, one zmm load). */
template <class T>
class AlignedArray {
  public:
    AlignedArray() = default;
    explicit AlignedArray(size_t n) : n_(n) {
        const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        p_.reset(static_cast<T *>(std::aligned_alloc(64, bytes ? bytes : 64)));
        if (!p_) throw std::bad_alloc();
        std::memset(static_cast<void *>(p_.get()), 0, bytes);
    }
    T *data() const { return p_.get(); }
    size_t size() const { return n_; }

  private:
    struct Free {
        void operator()(T *p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> p_;
    size_t n_ = 0;
};

/* What a Conv (kernel_api.h) points at. Heap-allocated, so the pointers stay valid. */
struct ConvPlan {
    Insn d;
    std::vector<VBlock> vblocks;
    std::vector<OTile> tiles;
    std::vector<TileUnit> units;
    AlignedArray<int32_t> wpack;
    AlignedArray<float> wdw;
    AlignedArray<float> bias;
    Conv conv;
};

struct Step {
    Insn d;
    std::unique_ptr<ConvPlan> conv; /* CONV2D only */
};

struct Range {
    uint64_t begin, end;
};

struct Plan {
    uint32_t header[BW_HEADER_WORDS];
    std::vector<Step> steps;
    /* Arena words some instruction (or the host, for the output) reads before anything wrote them. C-sim starts
     * from a zeroed arena; clearing just these before a run gives the same bytes without clearing it all. */
    std::vector<Range> zero_ranges;
    size_t qm_bytes = 0, qe_bytes = 0, qf_bytes = 0; /* per-run scratch for quantized CONV2D inputs (Buffers) */

    uint64_t arena_words() const { return header[BW_H_ARENA_WORDS]; }
    uint64_t input_words() const;
    uint64_t output_words() const;
};

/* Checks the program with the HLS kernel's own checks (npu_format.h; docs/isa.md "Status codes and validation")
 * and the framing as Program.from_bytes does; on success builds the plan. Returns the status (BW_STATUS_*);
 * `plan` is set only for BW_STATUS_OK. Throws std::bad_alloc when memory runs out. */
uint32_t build_plan(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes,
                    std::unique_ptr<Plan> &plan);

} // namespace bwn

#endif
