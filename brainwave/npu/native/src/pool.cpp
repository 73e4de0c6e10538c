#include "pool.h"

#include <chrono>

namespace bwn {
namespace {

constexpr auto kSpin = std::chrono::microseconds(200); /* idle workers spin this long before sleeping */

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
}

/* Waiting for another thread's last items: spin briefly, then yield, since on a busy machine (cores shared
 * with TensorFlow or other processes) the thread we wait for may need this core to finish. */
inline void wait_a_little(unsigned spins) {
    if (spins < 256) cpu_relax();
    else std::this_thread::yield();
}

inline uint32_t epoch_of(uint64_t s) { return (uint32_t)(s >> 32); }
inline uint32_t inside_of(uint64_t s) { return (uint32_t)s; }

} // namespace

Pool::Pool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_main(); });
}

Pool::~Pool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    for (std::thread &t : workers_) t.join();
}

void Pool::work() {
    for (size_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) {
        item_(ctx_, i);
        done_.fetch_add(1, std::memory_order_release);
    }
}

void Pool::run(size_t n, Item item, void *ctx) {
    item_ = item;
    ctx_ = ctx;
    n_ = n;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    const uint32_t open = epoch_of(state_.load()) + 1; /* odd */
    state_.store((uint64_t)open << 32);
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
    }
    work();
    for (unsigned spins = 0; done_.load(std::memory_order_acquire) < n; ++spins) wait_a_little(spins);
    /* close the job once no worker is inside it; a worker that has not joined yet never will */
    uint64_t s = (uint64_t)open << 32;
    for (unsigned spins = 0; !(inside_of(s) == 0 && state_.compare_exchange_weak(s, (uint64_t)(open + 1) << 32));
         ++spins) {
        wait_a_little(spins);
        s = state_.load();
    }
}

/* Joins the next open job (true), or returns false on stop. Spins for a while, then sleeps. */
bool Pool::wait_for_job(uint32_t &last_epoch) {
    auto joinable = [&](uint64_t s) { return (epoch_of(s) & 1u) && epoch_of(s) != last_epoch; };
    auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (unsigned spins = 0;; ++spins) {
        if (stop_.load(std::memory_order_relaxed)) return false;
        uint64_t s = state_.load(std::memory_order_acquire);
        if (joinable(s)) {
            if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
                last_epoch = epoch_of(s);
                return true;
            }
            continue;
        }
        cpu_relax();
        if (spins % 64 == 0 && std::chrono::steady_clock::now() > deadline) {
            std::unique_lock<std::mutex> lock(mutex_);
            ++sleepers_;
            wake_.wait(lock, [&] { return stop_.load() || joinable(state_.load()); });
            --sleepers_;
            deadline = std::chrono::steady_clock::now() + kSpin;
        }
    }
}

void Pool::worker_main() {
    uint32_t last_epoch = 0;
    while (wait_for_job(last_epoch)) {
        work();
        state_.fetch_sub(1, std::memory_order_release);
    }
}

} // namespace bwn
