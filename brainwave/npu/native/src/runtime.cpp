/* The C API (bwnative.h): SIMD dispatch, engines (thread pool + FIFO of runs), programs (plan + a pool of run
 * memories) and the instruction loop that hands work items to the kernels. */
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "bwnative.h"
#include "plan.h"
#include "pool.h"

namespace bwn {
namespace {

/* ------------------------------------------------------------------------------------------------------------ */
/* SIMD paths */

struct Path {
    const char *name;
    const Kernels *(*kernels)();
    const char *needs; /* what the CPU must have, for error messages */
};

const Path kPaths[] = {/* fastest first */
                       {"avx512vnni", kernels_avx512vnni, "AVX-512 F/BW/VL with VNNI and FMA"},
                       {"avx2", kernels_avx2, "AVX2 and FMA"},
                       {"portable", kernels_portable, "nothing"}};

bool cpu_can_run(const std::string &name) {
    if (name == "portable") return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (name == "avx2") return avx2;
    if (name == "avx512vnni")
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    return false;
}

const Path *find_path(const std::string &name) {
    for (const Path &p : kPaths)
        if (name == p.name) return &p;
    return nullptr;
}

bool usable(const Path &p) { return p.kernels() != nullptr && cpu_can_run(p.name); }

void set_error(char *err, size_t len, const std::string &message) {
    if (err && len) std::snprintf(err, len, "%s", message.c_str());
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Runs on one engine take turns in arrival order. */

class FifoLock {
  public:
    void lock() {
        std::unique_lock<std::mutex> lock(m_);
        const uint64_t ticket = next_++;
        turn_.wait(lock, [&] { return serving_ == ticket; });
    }
    void unlock() {
        {
            std::lock_guard<std::mutex> lock(m_);
            ++serving_;
        }
        turn_.notify_all();
    }

  private:
    std::mutex m_;
    std::condition_variable turn_;
    uint64_t next_ = 0, serving_ = 0;
};

/* The memory of one run: the arena and the scratch for quantized CONV2D inputs. */
struct RunMemory {
    AlignedArray<float> arena;
    AlignedArray<uint8_t> scratch;
};

/* The spec's float32 arithmetic is IEEE with round to nearest even and subnormals. A thread may run with
 * flush-to-zero or denormals-are-zero set (some math libraries switch them on), so every work item runs in the
 * default mode and then restores the thread's own. */
class DefaultFloatMode {
#if defined(__x86_64__) || defined(__i386__)
  public:
    DefaultFloatMode() : saved_(__builtin_ia32_stmxcsr()) { __builtin_ia32_ldmxcsr(kDefault); }
    ~DefaultFloatMode() { __builtin_ia32_ldmxcsr(saved_); }

  private:
    static constexpr unsigned kDefault = 0x1F80; /* exceptions masked, round to nearest, no FTZ, no DAZ */
    unsigned saved_;
#endif
};

/* Work items of about `total / (8 * threads)` units each, at least `min_size` (a multiple of `align`). */
struct Split {
    uint64_t size, count;
};

Split split(uint64_t total, int threads, uint64_t min_size, uint64_t align = 1) {
    uint64_t size = (total + 8ull * threads - 1) / (8ull * threads);
    if (threads == 1 || size < min_size) size = threads == 1 ? total : min_size;
    size = (size + align - 1) / align * align;
    if (size == 0) size = align;
    return {size, (total + size - 1) / size};
}

} // namespace
} // namespace bwn

struct bwn_engine {
    bwn_engine(const bwn::Path &p, int threads) : path(p), kernels(p.kernels()), pool(threads) {}
    const bwn::Path &path;
    const bwn::Kernels *kernels;
    bwn::Pool pool;
    bwn::FifoLock fifo;
};

struct bwn_program {
    std::unique_ptr<bwn::Plan> plan;
    std::mutex mutex;
    std::vector<std::unique_ptr<bwn::RunMemory>> idle; /* run memories not in use */

    std::unique_ptr<bwn::RunMemory> acquire() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!idle.empty()) {
                auto m = std::move(idle.back());
                idle.pop_back();
                return m;
            }
        }
        auto m = std::make_unique<bwn::RunMemory>();
        m->arena = bwn::AlignedArray<float>(plan->arena_words());
        m->scratch = bwn::AlignedArray<uint8_t>(std::max(plan->qm_bytes + plan->qe_bytes, plan->qf_bytes));
        return m;
    }

    void release(std::unique_ptr<bwn::RunMemory> m) {
        std::lock_guard<std::mutex> lock(mutex);
        idle.push_back(std::move(m));
    }
};

namespace bwn {
namespace {

/* Runs a plan's instructions on one run's memory, spreading each instruction's work items over the pool. */
class Runner {
  public:
    Runner(const Kernels &k, Pool &pool, const Plan &plan, RunMemory &m) : k_(k), pool_(pool), plan_(plan) {
        uint8_t *scratch = m.scratch.data();
        b_ = Buffers{m.arena.data(), reinterpret_cast<int16_t *>(scratch),
                     reinterpret_cast<int32_t *>(scratch + plan.qm_bytes), reinterpret_cast<float *>(scratch)};
    }

    void run(const float *input, float *output, bwn_observer observer, void *user) {
        const uint32_t *h = plan_.header;
        std::memcpy(b_.arena + h[BW_H_INPUT_OFFSET], input, plan_.input_words() * sizeof(float));
        for (const Range &r : plan_.zero_ranges) std::memset(b_.arena + r.begin, 0, (r.end - r.begin) * sizeof(float));
        for (size_t i = 0; i < plan_.steps.size(); ++i) {
            step(plan_.steps[i]);
            if (observer) observer(user, (uint32_t)i, b_.arena);
        }
        std::memcpy(output, b_.arena + h[BW_H_OUTPUT_OFFSET], plan_.output_words() * sizeof(float));
    }

  private:
    /* item(i) for i in [0, n) on the pool's threads */
    template <class Item>
    void parallel(size_t n, Item item) {
        pool_.parallel(n, [&](size_t i) {
            [[maybe_unused]] DefaultFloatMode mode;
            item(i);
        });
    }

    /* kernel(begin, end) over [0, total) in items of s.size */
    template <class Kernel>
    void over(uint64_t total, Split s, Kernel kernel) {
        parallel(s.count, [&](size_t i) { kernel(i * s.size, std::min<uint64_t>(total, (i + 1) * s.size)); });
    }

    template <class Kernel>
    void over(uint64_t total, uint64_t min_size, Kernel kernel) {
        over(total, split(total, pool_.threads(), min_size), kernel);
    }

    void step(const Step &s) {
        const Insn &d = s.d;
        const uint64_t out_pixels = (uint64_t)d.out_h * d.out_w;
        switch (d.op) {
        case BW_OP_CONV2D: conv(s.conv->conv); break;
        case BW_OP_ADD:
        case BW_OP_ACTIVATION: {
            const uint64_t n = out_pixels * d.out_c;
            over(n, split(n, pool_.threads(), 8192, kLanes), [&](size_t b, size_t e) { k_.eltwise(d, b_.arena, b, e); });
            break;
        }
        case BW_OP_MAXPOOL:
        case BW_OP_AVGPOOL: over(out_pixels, 16, [&](size_t b, size_t e) { k_.pool(d, b_.arena, b, e); }); break;
        case BW_OP_GLOBAL_AVGPOOL:
            over((d.in_c + kLanes - 1) / kLanes, 1, [&](size_t b, size_t e) { k_.global_avgpool(d, b_.arena, b, e); });
            break;
        case BW_OP_CONCAT: over(out_pixels, 16, [&](size_t b, size_t e) { k_.concat(d, b_.arena, b, e); }); break;
        default: over(out_pixels, 16, [&](size_t b, size_t e) { k_.pad(d, b_.arena, b, e); }); break;
        }
    }

    void conv(const Conv &c) {
        const Insn &d = *c.d;
        const uint64_t in_pixels = (uint64_t)d.in_h * d.in_w, out_pixels = (uint64_t)d.out_h * d.out_w;
        over(in_pixels, 2048 / c.nb + 1, [&](size_t b, size_t e) { k_.quantize(c, b_, b, e); });
        if (c.wdw) {
            over(out_pixels, 16, [&](size_t b, size_t e) { k_.conv_depthwise(c, b_, b, e); });
            return;
        }
        /* the all-zero pixel that out-of-input taps read (kernel_api.h Buffers) */
        std::memset(b_.qm + in_pixels * c.nb * kLanes, 0, (size_t)c.nb * kLanes * sizeof(int16_t));
        for (uint32_t k = 0; k < c.nb; ++k) b_.qe[in_pixels * c.nb + k] = (BW_EXP_MIN + 127) << 23;
        if (out_pixels == 0) return;
        const DenseSplit ds = dense_split(out_pixels, c.nunits);
        parallel((size_t)c.nunits * ds.nchunks, [&](size_t i) { k_.conv_dense(c, b_, ds, i, i + 1); });
    }

    /* Pixel chunks (multiples of the micro-kernel's pixels) so that units x chunks gives every thread several
     * items; one chunk per unit on one thread, which keeps a unit's weights in cache across all pixels. */
    DenseSplit dense_split(uint64_t pixels, uint32_t units) const {
        const uint64_t calls = (pixels + k_.pixels - 1) / k_.pixels;
        const int threads = pool_.threads();
        uint64_t per_unit = threads == 1 ? 1 : (8ull * threads + units - 1) / units;
        per_unit = std::max<uint64_t>(1, std::min(per_unit, calls));
        const uint64_t chunk = (calls + per_unit - 1) / per_unit * k_.pixels;
        return DenseSplit{(uint32_t)chunk, (uint32_t)((pixels + chunk - 1) / chunk)};
    }

    const Kernels &k_;
    Pool &pool_;
    const Plan &plan_;
    Buffers b_;
};

} // namespace
} // namespace bwn

using namespace bwn;

extern "C" {

int bwn_simd_supported(const char *name) {
    const Path *p = name ? find_path(name) : nullptr;
    return p && usable(*p);
}

const char *bwn_simd_best(void) {
    for (const Path &p : kPaths)
        if (usable(p)) return p.name;
    return "portable";
}

bwn_engine *bwn_engine_create(const char *simd, int threads, char *err, size_t err_len) {
    try {
        const std::string name = simd && *simd ? simd : bwn_simd_best();
        const Path *p = find_path(name);
        if (!p) {
            set_error(err, err_len, "unknown SIMD path '" + name + "'; choose avx512vnni, avx2 or portable");
            return nullptr;
        }
        if (!usable(*p)) {
            set_error(err, err_len, std::string("this CPU cannot run the ") + p->name + " path (it needs " + p->needs +
                                        "); the best it can run is " + bwn_simd_best());
            return nullptr;
        }
        if (threads < 1) {
            set_error(err, err_len, "threads must be at least 1, got " + std::to_string(threads));
            return nullptr;
        }
        return new bwn_engine(*p, threads);
    } catch (const std::exception &e) {
        set_error(err, err_len, std::string("cannot create the engine: ") + e.what());
        return nullptr;
    }
}

void bwn_engine_destroy(bwn_engine *engine) { delete engine; }

const char *bwn_engine_simd(const bwn_engine *engine) { return engine->path.name; }

int bwn_engine_threads(const bwn_engine *engine) { return engine->pool.threads(); }

bwn_program *bwn_program_load(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes,
                              uint32_t *status, char *err, size_t err_len) {
    try {
        auto program = std::make_unique<bwn_program>();
        *status = build_plan(words, nwords, weights, nbytes, program->plan);
        return *status == BW_STATUS_OK ? program.release() : nullptr;
    } catch (const std::bad_alloc &) {
        *status = BW_STATUS_OK;
        set_error(err, err_len, "out of memory while loading the program");
        return nullptr;
    }
}

void bwn_program_free(bwn_program *program) { delete program; }

int bwn_run(bwn_engine *engine, bwn_program *program, const float *input, float *output) {
    return bwn_run_observed(engine, program, input, output, nullptr, nullptr);
}

int bwn_run_observed(bwn_engine *engine, bwn_program *program, const float *input, float *output,
                     bwn_observer observer, void *user) {
    std::lock_guard<FifoLock> turn(engine->fifo);
    try {
        std::unique_ptr<RunMemory> memory = program->acquire();
        Runner(*engine->kernels, engine->pool, *program->plan, *memory).run(input, output, observer, user);
        program->release(std::move(memory));
        return 0;
    } catch (const std::bad_alloc &) {
        return -1;
    }
}

} // extern "C"
