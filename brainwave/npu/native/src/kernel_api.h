/* What the runtime (plan.cpp, runtime.cpp) hands the per-instruction-set kernels (simd_*.cpp): plain structs and
 * a table of function pointers, nothing else.
 *
 * The kernel files are compiled with different -m flags (AVX-512, AVX2, baseline). An inline function or template
 * that both a kernel file and the runtime instantiated would be merged by the linker into one copy, possibly the
 * AVX-512 one, which would then run on a CPU without AVX-512. So this header defines no functions, and the kernels
 * keep everything they define in an anonymous namespace (kernels.h).
 */
#ifndef BWN_KERNEL_API_H
#define BWN_KERNEL_API_H

#include <cstddef>
#include <cstdint>

#include "npu_isa.h"

namespace bwn {

constexpr int kLanes = BW_BLOCK;     /* output channels per tile = channels per block = lanes of one vector */
constexpr int kPairs = BW_BLOCK / 2; /* int16 pairs per block: one vpdpwssd / vpmaddwd step each */
/* Repacked weights per (tile, tap, virtual block): kPairs vectors of 16 int32 lanes, lane o holding output o's
 * weights for channels (2j, 2j+1) as an int16 pair, then one vector of scale exponent bits (see VBlock). */
constexpr int kTileWords = (kPairs + 1) * kLanes;

/* One decoded instruction (docs/isa.md); field positions come from npu_isa.h in plan.cpp. */
using Insn = bw_insn; /* decoded by bw_decode_insn (npu_isa.h, generated from brainwave/npu/isa.py) */

/* A virtual block: one chunk of docs/numerics.md's dot product (channels sharing one activation block and one
 * weight block), laid out on the 16 lanes of activation block `ab` of the input pixel. The repacked weights are
 * zero outside the chunk's lanes, so a whole-block integer dot product gives exactly the chunk's sum. Only the
 * int16 pairs [j0, j1) can be nonzero. For groups = 1 every virtual block is a whole activation block. */
struct VBlock {
    uint32_t ab, j0, j1;
};

/* Up to 16 consecutive output channels of one group. `w` points at taps * nvb * kTileWords int32. */
struct OTile {
    uint32_t o0, n;
    const VBlock *vb; /* the group's virtual blocks, in ascending channel order (the accumulation order) */
    uint32_t nvb;
    const int32_t *w;
};

/* Tiles the micro-kernel computes together: `count` (1 or 2) consecutive tiles of one group. */
struct TileUnit {
    uint32_t first, count;
};

/* A CONV2D ready to run. Dense and grouped convs use tiles/units; depthwise convs (groups = in_c = out_c) use wdw. */
struct Conv {
    const Insn *d;
    uint32_t nb;     /* activation blocks per input pixel: ceil(in_c / 16) */
    int mbits;       /* activation magnitude bits M_a */
    const float *bias; /* out_c floats, zero-padded by 16 */
    const OTile *tiles;
    const TileUnit *units;
    uint32_t nunits;
    const float *wdw; /* depthwise: dequantized weights [tap][nb * 16] (exact floats) */
};

/* Per-run memory. The quantized input of the running CONV2D: for dense/grouped convs int16 mantissas
 * qm[pixel][nb * 16] and exponent bits qe[pixel][nb] = (E_a + 127) << 23, with one extra all-zero pixel at index
 * in_h * in_w that out-of-input taps read; for depthwise convs the dequantized values qf[pixel][nb * 16]. */
struct Buffers {
    float *arena;
    int16_t *qm;
    int32_t *qe;
    float *qf;
};

/* Work split of a dense conv: units x pixel chunks, item = unit * nchunks + chunk. */
struct DenseSplit {
    uint32_t chunk_pixels, nchunks;
};

/* One instruction set's kernels. Each takes a half-open range [begin, end) of independent work items, so the
 * runtime can hand ranges to threads; items never overlap in what they write. */
struct Kernels {
    const char *name;
    int pixels; /* output pixels per dense micro-kernel call; chunk sizes are multiples of it */
    void (*quantize)(const Conv &c, const Buffers &b, size_t begin, size_t end);       /* input pixels */
    void (*conv_dense)(const Conv &c, const Buffers &b, DenseSplit s, size_t begin, size_t end);
    void (*conv_depthwise)(const Conv &c, const Buffers &b, size_t begin, size_t end); /* output pixels */
    void (*eltwise)(const Insn &d, float *arena, size_t begin, size_t end);          /* ADD, ACTIVATION: elements */
    void (*pad)(const Insn &d, float *arena, size_t begin, size_t end);              /* output pixels */
    void (*pool)(const Insn &d, float *arena, size_t begin, size_t end);             /* MAXPOOL, AVGPOOL: output pixels */
    void (*global_avgpool)(const Insn &d, float *arena, size_t begin, size_t end);   /* channel blocks */
    void (*concat)(const Insn &d, float *arena, size_t begin, size_t end);           /* output pixels */
};

/* nullptr when the library was built without that path (e.g. not x86). Whether the CPU can run it is the
 * runtime's question (runtime.cpp). */
const Kernels *kernels_avx512vnni();
const Kernels *kernels_avx2();
const Kernels *kernels_portable();

} // namespace bwn

#endif
