/* A small fork-join thread pool for the executor: `threads - 1` workers plus the calling thread run the items of
 * one parallel loop at a time. Our own rather than OpenMP's, so it cannot fight TensorFlow's thread pools over the
 * same cores, and its idle workers sleep after a short spin. */
#ifndef BWN_POOL_H
#define BWN_POOL_H

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace bwn {

class Pool {
  public:
    explicit Pool(int threads);
    ~Pool();
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;

    int threads() const { return (int)workers_.size() + 1; }

    /* fn(i) for every i in [0, n), on any of the threads; returns when all are done. Not reentrant: one caller at
     * a time (the executor serializes runs). */
    template <class Fn>
    void parallel(size_t n, Fn &&fn) {
        if (workers_.empty() || n <= 1) {
            for (size_t i = 0; i < n; ++i) fn(i);
            return;
        }
        using Raw = typename std::remove_reference<Fn>::type;
        run(n, [](void *ctx, size_t i) { (*static_cast<Raw *>(ctx))(i); }, &fn);
    }

  private:
    using Item = void (*)(void *ctx, size_t i);

    void run(size_t n, Item item, void *ctx);
    void work();
    void worker_main();
    bool wait_for_job(uint32_t &last_epoch);

    /* the current job; written only while no worker is inside it */
    Item item_ = nullptr;
    void *ctx_ = nullptr;
    size_t n_ = 0;
    std::atomic<size_t> next_{0}, done_{0};
    /* (epoch << 32) | workers inside the job; an odd epoch means a job is open for workers to join */
    std::atomic<uint64_t> state_{0};

    std::mutex mutex_;
    std::condition_variable wake_;
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::vector<std::thread> workers_;
};

} // namespace bwn

#endif
