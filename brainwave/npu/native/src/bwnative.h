/* libbwnative: runs NPU programs (docs/isa.md) on the CPU, byte for byte as the HLS kernel (docs/numerics.md).
 *
 *   bwn_engine_create   a SIMD path and a thread pool; runs on one engine are serialized, first come first served
 *   bwn_program_load    validates like the kernel, copies and repacks what running needs (the caller's buffers may
 *                       be freed afterwards); any engine can run a loaded program
 *   bwn_run             one input -> one output; thread-safe
 *   bwn_run_observed    the same, calling an observer with the arena after every instruction (per-layer tracing)
 *
 * Every function catches its own exceptions: nothing throws across this interface. */
#ifndef BWNATIVE_H
#define BWNATIVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BWN_API __attribute__((visibility("default")))

typedef struct bwn_engine bwn_engine;
typedef struct bwn_program bwn_program;

/* 1 if this build has the SIMD path `name` ("avx512vnni", "avx2", "portable") and this CPU can run it, else 0. */
BWN_API int bwn_simd_supported(const char *name);

/* The fastest path this CPU can run. */
BWN_API const char *bwn_simd_best(void);

/* simd: a path name, or NULL / "" for the best one; threads >= 1. On failure returns NULL and writes a message to
 * err (NUL-terminated, at most err_len bytes). */
BWN_API bwn_engine *bwn_engine_create(const char *simd, int threads, char *err, size_t err_len);
BWN_API void bwn_engine_destroy(bwn_engine *engine);
BWN_API const char *bwn_engine_simd(const bwn_engine *engine);
BWN_API int bwn_engine_threads(const bwn_engine *engine);

/* words: the program buffer (header + instructions, nwords uint32); weights: the weights blob. Writes the kernel's
 * status (BW_STATUS_*, npu_isa.h) to *status and returns NULL unless it is BW_STATUS_OK. Returns NULL with status
 * OK and a message in err when memory runs out. */
BWN_API bwn_program *bwn_program_load(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes,
                                      uint32_t *status, char *err, size_t err_len);
BWN_API void bwn_program_free(bwn_program *program);

/* input: input_h * input_w * input_c floats (HWC); output: output_h * output_w * output_c floats. Returns 0, or
 * -1 when the run's memory could not be allocated. */
BWN_API int bwn_run(bwn_engine *engine, bwn_program *program, const float *input, float *output);

/* Called after instruction `index` ran, with the run's arena (arena_words floats), to read what it wrote; on the
 * thread that called bwn_run_observed. */
typedef void (*bwn_observer)(void *user, uint32_t index, const float *arena);

/* bwn_run, calling observer(user, i, arena) after each instruction i. */
BWN_API int bwn_run_observed(bwn_engine *engine, bwn_program *program, const float *input, float *output,
                             bwn_observer observer, void *user);

#ifdef __cplusplus
}
#endif

#endif
