/* Brainwave NPU kernel: interface shared by the Vitis HLS top, the C-sim test bench and libnpu.so.
 * The contract is docs/numerics.md (arithmetic) and docs/isa.md (program format, status codes). */
#ifndef BW_NPU_KERNEL_H
#define BW_NPU_KERNEL_H

#include <stdint.h>

#include "npu_isa.h"
#include "npu_config.h"

/* Values written to *status (docs/isa.md "Status codes and validation"); the codes come from the generated header. */
#define NPU_STATUS_OK BW_STATUS_OK
#define NPU_STATUS_BAD_MAGIC BW_STATUS_BAD_MAGIC
#define NPU_STATUS_BAD_VERSION BW_STATUS_BAD_VERSION
#define NPU_STATUS_BAD_OPCODE BW_STATUS_BAD_OPCODE
#define NPU_STATUS_OUT_OF_BOUNDS BW_STATUS_OUT_OF_BOUNDS
#define NPU_STATUS_BAD_FIELD BW_STATUS_BAD_FIELD /* a field the kernel cannot execute */

/* Sizes of the on-chip buffers. A CONV2D may have at most NPU_MAX_CHANNELS input and output channels
 * (ResNet-50 needs 2048, EfficientNet-Lite0 1280); larger ones are rejected with NPU_STATUS_BAD_FIELD. */
#define NPU_MAX_CHANNELS BW_MAX_CHANNELS
#define NPU_MAX_BLOCKS (NPU_MAX_CHANNELS / BW_BLOCK)
/* The v2 engine's build parameters (docs/hardware.md), from the generated npu_config.h: one table with the
 * performance model (brainwave/fpga/boards.py TARGETS). -DNPU_TARGET_<NAME> picks another target's numbers. */
#define NPU_P NPU_CFG_P                  /* output pixels per cycle */
#define NPU_KD NPU_CFG_KD                /* DSP cascades (16 DSPs) per pixel: output channels per cycle in bfp20 */
#define NPU_L NPU_CFG_L                  /* at most this many interleaved pixel groups (accumulators per lane) */
#define NPU_L_MIN NPU_CFG_L_MIN          /* at least this many: the float32 accumulate adder's latency */
#define NPU_PACK NPU_CFG_PACK            /* products per DSP for 8-bit-or-narrower mantissas (bfp16, bfp12) */
#define NPU_KMAX (NPU_KD * NPU_PACK)     /* output channels per work unit in bfp16 / bfp12 */
#define NPU_ACC_LANES (NPU_KMAX > 16 ? NPU_KMAX : 16) /* float32 accumulate lanes per pixel */
#ifndef NPU_TEST_SMALL_BUFFERS
#define NPU_LB_BLOCKS NPU_CFG_LB_BLOCKS  /* line buffer: quantized 16-lane input blocks */
#define NPU_WBUF_BYTES NPU_CFG_WBUF_BYTES /* one weight-tile bank (two banks, ping-pong) */
#else /* tests only (tests/hls/test_kernel_variants.py): tiny buffers, so the sweep's small layers take every
       * tiling path: many bands, reduced K, weight tiles re-fetched per band, the generic path, pool fallback */
#define NPU_LB_BLOCKS 48
#define NPU_WBUF_BYTES 2048
#endif
#define NPU_WB_BLOCKS (NPU_WBUF_BYTES / 16) /* its capacity in bfp16 blocks (bfp20 blocks: half) */
#define NPU_PORT_BITS NPU_CFG_PORT_BITS  /* weights and arena m_axi data width */
#define NPU_ABSORB NPU_CFG_ABSORB        /* quantized input blocks the line buffer takes per cycle */
#define NPU_POOL_LANES NPU_CFG_POOL_LANES /* channels a pool combines per cycle */
#ifndef NPU_TEST_SMALL_BUFFERS
#define NPU_POOL_FLOATS NPU_CFG_POOL_FLOATS /* pooling row cache */
#else
#define NPU_POOL_FLOATS 64
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the program. program: header + instructions; weights: the weights blob; arena: float32 activations
 * (the host writes the input at input_offset and reads the output at output_offset); status: one word.
 * weights_b and arena_b must point at the same buffers as weights and arena: they are second memory ports onto
 * them (docs/hardware.md "Memory ports"). mode: BW_MODE_RUN (check, then run), BW_MODE_VALIDATE (check only)
 * or BW_MODE_TRUSTED_RUN (run a program these buffers held when BW_MODE_VALIDATE passed; docs/isa.md). */
void npu_run(const uint32_t *program, const uint8_t *weights, const uint8_t *weights_b, float *arena,
             float *arena_b, uint32_t *status, uint32_t mode);

#ifdef __cplusplus
}
#endif

#endif
