/* Brainwave NPU kernel: interface shared by the Vitis HLS top, the C-sim test bench and libnpu.so.
 * The contract (numerics, program format, status codes) is docs/npu-spec-draft.md. */
#ifndef BW_NPU_KERNEL_H
#define BW_NPU_KERNEL_H

#include <stdint.h>

#include "npu_isa.h"

/* Values written to *status (spec section 4). */
#define NPU_STATUS_OK 0u
#define NPU_STATUS_BAD_MAGIC 1u
#define NPU_STATUS_BAD_VERSION 2u
#define NPU_STATUS_BAD_OPCODE 3u
#define NPU_STATUS_OUT_OF_BOUNDS 4u
#define NPU_STATUS_BAD_FIELD 5u /* proposed in the draft: a field the kernel cannot execute */

/* Sizes of the on-chip buffers. A CONV2D may have at most NPU_MAX_CHANNELS input and output channels
 * (ResNet-50 needs 2048, EfficientNet-Lite0 1280); larger ones are rejected with NPU_STATUS_BAD_FIELD. */
#define NPU_MAX_CHANNELS 4096
#define NPU_MAX_BLOCKS (NPU_MAX_CHANNELS / BW_BLOCK)
/* Output channels interleaved in the MAC pipeline: each lane owns one float32 accumulator, so the
 * accumulator recurrence has distance NPU_OLANES (>= the float adder latency) and the pipeline runs at II=1
 * while every accumulator still adds its partials in the order the spec fixes. */
#define NPU_OLANES 8

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the program. program: header + instructions; weights: the weights blob; arena: float32 activations
 * (the host writes the input at input_offset and reads the output at output_offset); status: one word. */
void npu_run(const uint32_t *program, const uint8_t *weights, float *arena, uint32_t *status);

#ifdef __cplusplus
}
#endif

#endif
