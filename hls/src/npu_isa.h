/* Hand-written from docs/npu-spec-draft.md section 3 until `python -m brainwave.npu.isa --c-header`
 * exists; then this file is regenerated and tests/hls checks it equals the generator's output. */
#ifndef BW_NPU_ISA_H
#define BW_NPU_ISA_H

#define BW_MAGIC 0x504E5742u
#define BW_ISA_VERSION 1u
#define BW_HEADER_WORDS 16u
#define BW_INSN_WORDS 32u
#define BW_BLOCK 16
#define BW_EXP_MIN (-50)
#define BW_EXP_MAX 50

#define BW_OP_CONV2D 1u
#define BW_OP_ADD 2u
#define BW_OP_MAXPOOL 3u
#define BW_OP_AVGPOOL 4u
#define BW_OP_GLOBAL_AVGPOOL 5u
#define BW_OP_ACTIVATION 6u
#define BW_OP_PAD 7u

#define BW_ACT_NONE 0u
#define BW_ACT_RELU 1u
#define BW_ACT_RELU6 2u

#define BW_PREC_BFP16 1u
#define BW_PREC_BFP12 2u

#define BW_H_MAGIC 0
#define BW_H_ISA_VERSION 1
#define BW_H_NUM_INSTRUCTIONS 2
#define BW_H_ARENA_WORDS 3
#define BW_H_WEIGHTS_BYTES 4
#define BW_H_INPUT_OFFSET 5
#define BW_H_INPUT_H 6
#define BW_H_INPUT_W 7
#define BW_H_INPUT_C 8
#define BW_H_OUTPUT_OFFSET 9
#define BW_H_OUTPUT_H 10
#define BW_H_OUTPUT_W 11
#define BW_H_OUTPUT_C 12
#define BW_H_INSN_WORDS 13

#define BW_I_OPCODE 0
#define BW_I_ACTIVATION 1
#define BW_I_PRECISION 2
#define BW_I_IN_OFFSET 3
#define BW_I_IN_H 4
#define BW_I_IN_W 5
#define BW_I_IN_C 6
#define BW_I_OUT_OFFSET 7
#define BW_I_OUT_H 8
#define BW_I_OUT_W 9
#define BW_I_OUT_C 10
#define BW_I_KERNEL_H 11
#define BW_I_KERNEL_W 12
#define BW_I_STRIDE_H 13
#define BW_I_STRIDE_W 14
#define BW_I_PAD_TOP 15
#define BW_I_PAD_LEFT 16
#define BW_I_PAD_BOTTOM 17
#define BW_I_PAD_RIGHT 18
#define BW_I_GROUPS 19
#define BW_I_WEIGHT_MANT_OFFSET 20
#define BW_I_WEIGHT_EXP_OFFSET 21
#define BW_I_BIAS_OFFSET 22
#define BW_I_HAS_RESIDUAL 23
#define BW_I_RESIDUAL_OFFSET 24
#define BW_I_IN2_OFFSET 25

#endif
