/* C-simulation test bench for npu_run.
 *
 *   tb_npu PROGRAM.bin WEIGHTS.bin INPUT.f32 EXPECTED.f32 [OUTPUT.f32]
 *
 * Loads the program and weights, writes the input (raw float32, HWC) into a zeroed arena at the program's
 * input_offset, runs the kernel, writes the output tensor (raw float32) to OUTPUT (default ./tb_output.f32)
 * and compares it byte for byte with EXPECTED. EXPECTED "-" only writes the output (to make golden files).
 * Prints PASS or FAIL (with the first mismatching float index) and returns 0 only on PASS.
 * Exit codes: 0 pass, 1 output mismatch, 2 usage or I/O error, 3 kernel status != 0.
 */
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "npu_kernel.h"

static bool read_file(const char *path, std::vector<uint8_t> &out) {
    FILE *f = std::fopen(path, "rb");
    if (!f) {
        std::fprintf(stderr, "tb_npu: cannot open %s\n", path);
        return false;
    }
    out.clear();
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
    bool ok = !std::ferror(f);
    std::fclose(f);
    if (!ok) std::fprintf(stderr, "tb_npu: error reading %s\n", path);
    return ok;
}

static bool write_file(const char *path, const void *data, size_t size) {
    FILE *f = std::fopen(path, "wb");
    if (!f) {
        std::fprintf(stderr, "tb_npu: cannot create %s\n", path);
        return false;
    }
    bool ok = std::fwrite(data, 1, size, f) == size;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) std::fprintf(stderr, "tb_npu: error writing %s\n", path);
    return ok;
}

static uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        std::fprintf(stderr, "usage: %s PROGRAM.bin WEIGHTS.bin INPUT.f32 EXPECTED.f32|- [OUTPUT.f32]\n", argv[0]);
        return 2;
    }
    const char *out_path = argc == 6 ? argv[5] : "tb_output.f32";
    std::vector<uint8_t> prog_bytes, weights, input, expected;
    const bool compare = std::strcmp(argv[4], "-") != 0;
    if (!read_file(argv[1], prog_bytes) || !read_file(argv[2], weights) || !read_file(argv[3], input) ||
        (compare && !read_file(argv[4], expected)))
        return 2;
    if (prog_bytes.size() < BW_HEADER_WORDS * 4 || prog_bytes.size() % 4 != 0) {
        std::fprintf(stderr, "tb_npu: %s is not a program (size %zu)\n", argv[1], prog_bytes.size());
        return 2;
    }
    std::vector<uint32_t> program(prog_bytes.size() / 4);
    std::memcpy(program.data(), prog_bytes.data(), prog_bytes.size()); /* the file is little-endian */
    const uint32_t *h = program.data();
    const uint64_t need_words = BW_HEADER_WORDS + (uint64_t)h[BW_H_NUM_INSTRUCTIONS] * BW_INSN_WORDS;
    if (program.size() < need_words) {
        std::fprintf(stderr, "tb_npu: program has %zu words, header says %llu\n", program.size(),
                     (unsigned long long)need_words);
        return 2;
    }
    if (weights.size() < h[BW_H_WEIGHTS_BYTES]) {
        std::fprintf(stderr, "tb_npu: weights file has %zu bytes, header says %u\n", weights.size(),
                     h[BW_H_WEIGHTS_BYTES]);
        return 2;
    }
    const uint64_t in_n = (uint64_t)h[BW_H_INPUT_H] * h[BW_H_INPUT_W] * h[BW_H_INPUT_C];
    const uint64_t out_n = (uint64_t)h[BW_H_OUTPUT_H] * h[BW_H_OUTPUT_W] * h[BW_H_OUTPUT_C];
    if (input.size() != in_n * 4) {
        std::fprintf(stderr, "tb_npu: input has %zu bytes, program expects %llu\n", input.size(),
                     (unsigned long long)(in_n * 4));
        return 2;
    }
    if ((uint64_t)h[BW_H_INPUT_OFFSET] + in_n > h[BW_H_ARENA_WORDS] ||
        (uint64_t)h[BW_H_OUTPUT_OFFSET] + out_n > h[BW_H_ARENA_WORDS]) {
        std::fprintf(stderr, "tb_npu: input/output tensor outside the arena\n");
        return 2;
    }
    std::vector<float> arena(h[BW_H_ARENA_WORDS] ? h[BW_H_ARENA_WORDS] : 1, 0.0f);
    std::memcpy(arena.data() + h[BW_H_INPUT_OFFSET], input.data(), input.size());
    if (weights.empty()) weights.push_back(0); /* keep a valid pointer */

    uint32_t status = 0xFFFFFFFFu;
    auto t0 = std::chrono::steady_clock::now();
    npu_run(program.data(), weights.data(), weights.data(), arena.data(), arena.data(), &status, BW_MODE_RUN);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("tb_npu: %u instructions, kernel %.6f s, status %u\n", h[BW_H_NUM_INSTRUCTIONS], secs, status);
    if (status != 0) {
        std::printf("FAIL: kernel status %u\n", status);
        return 3;
    }
    const float *out = arena.data() + h[BW_H_OUTPUT_OFFSET];
    if (!write_file(out_path, out, out_n * 4)) return 2;
    if (!compare) {
        std::printf("DONE: %llu floats written to %s (no comparison)\n", (unsigned long long)out_n, out_path);
        return 0;
    }
    if (expected.size() != out_n * 4) {
        std::printf("FAIL: expected file has %zu bytes, output has %llu\n", expected.size(),
                    (unsigned long long)(out_n * 4));
        return 1;
    }
    for (uint64_t i = 0; i < out_n; i++) {
        float e;
        std::memcpy(&e, expected.data() + 4 * i, 4);
        if (bits(out[i]) != bits(e)) {
            uint64_t mism = 0;
            for (uint64_t j = i; j < out_n; j++) {
                float ej;
                std::memcpy(&ej, expected.data() + 4 * j, 4);
                mism += bits(out[j]) != bits(ej);
            }
            std::printf("FAIL: first mismatch at float index %llu: got %.9g (0x%08x), expected %.9g (0x%08x); "
                        "%llu of %llu floats differ\n",
                        (unsigned long long)i, out[i], bits(out[i]), e, bits(e), (unsigned long long)mism,
                        (unsigned long long)out_n);
            return 1;
        }
    }
    std::printf("PASS: %llu floats identical\n", (unsigned long long)out_n);
    return 0;
}
