/* Brainwave NPU kernel: interface shared by the Vitis HLS top, the C-sim test bench and libnpu.so.
 * The contract is docs/numerics.md (arithmetic) and docs/isa.md (program format, status codes). */
#ifndef BW_NPU_KERNEL_H
#define BW_NPU_KERNEL_H

#include <stdint.h>

#include "npu_isa.h"

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
