// Verilator test bench for the PE lanes: streams chunk sequences from a vector file through the lane at one
// chunk per cycle, with every accumulator slot busy, and writes each sequence's float32 result.
//
//   pe_lane_tb VECTORS RESULTS [--bubbles PERCENT] [--seed N]
//
// Built once per lane (verilator --cc --exe --build, -DPE_LANE_BFP16 for pe_lane_bfp16; see rtl/Makefile).
// The vector file (little-endian, written by tests/rtl/lane_vectors.py) holds tables of activation and
// weight blocks and a list of jobs. A job is a pair of sequences p and q of the same length that share
// their weight blocks (what pe_lane_bfp16 computes at once); pe_lane_bfp20 runs p and q in two slots.
//
//   char     magic[8] = "PELANE1"
//   uint32   n_ablocks, n_wblocks, n_jobs, n_chunks
//   int16    a_mant[n_ablocks][16];  int8 a_exp[n_ablocks]
//   int16    w_mant[n_wblocks][16];  int8 w_exp[n_wblocks]
//   Job      jobs[n_jobs]            {uint32 first_chunk, n_chunks, precision}
//   Chunk    chunks[n_chunks]        {uint32 w, ap, aq, repeat}  (block indices; presented `repeat` times)
//
// RESULTS gets uint32 float32 bit patterns, p then q for every job. The bench also checks the lane's
// timing: every result must come out the same number of cycles after its last chunk (printed as latency=),
// and no result may be missing or extra. --bubbles leaves that percentage of slot turns empty (in_valid = 0)
// to exercise the idle path. Exit status 0 on success.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "verilated.h"
#ifdef PE_LANE_BFP16
#include "Vpe_lane_bfp16.h"
using Lane = Vpe_lane_bfp16;
#else
#include "Vpe_lane_bfp20.h"
using Lane = Vpe_lane_bfp20;
#endif

namespace {

constexpr int kLanes = 16;
constexpr int kInterleave = 6;  // the accumulator's loop length (fp32_interleaved_acc)

struct Job {
  uint32_t first_chunk, n_chunks, precision;
};
struct Chunk {
  uint32_t w, ap, aq, repeat;
};

struct Vectors {
  std::vector<int16_t> a_mant, w_mant;
  std::vector<int8_t> a_exp, w_exp;
  std::vector<Job> jobs;
  std::vector<Chunk> chunks;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "pe_lane_tb: %s\n", message.c_str());
  std::exit(1);
}

template <typename T>
void read_array(std::FILE* f, std::vector<T>& v, size_t n) {
  v.resize(n);
  if (n && std::fread(v.data(), sizeof(T), n, f) != n) fail("vector file is truncated");
}

Vectors load(const char* path) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) fail(std::string("cannot open ") + path);
  char magic[8];
  uint32_t n[4];
  if (std::fread(magic, 1, 8, f) != 8 || std::memcmp(magic, "PELANE1", 8) != 0) fail("not a PELANE1 file");
  if (std::fread(n, sizeof(uint32_t), 4, f) != 4) fail("vector file is truncated");
  Vectors v;
  read_array(f, v.a_mant, size_t(n[0]) * kLanes);
  read_array(f, v.a_exp, n[0]);
  read_array(f, v.w_mant, size_t(n[1]) * kLanes);
  read_array(f, v.w_exp, n[1]);
  read_array(f, v.jobs, n[2]);
  read_array(f, v.chunks, n[3]);
  std::fclose(f);
  for (const Chunk& c : v.chunks)
    if (c.w >= n[1] || c.ap >= n[0] || c.aq >= n[0] || c.repeat == 0) fail("chunk refers to a missing block");
  for (const Job& j : v.jobs)
    if (j.n_chunks == 0 || uint64_t(j.first_chunk) + j.n_chunks > n[3]) fail("job refers to missing chunks");
  return v;
}

// Where a sequence (or, for bfp16, a pair) stands: which chunk, and how many repeats of it are done.
struct Cursor {
  const Job* job = nullptr;
  uint32_t chunk = 0, rep = 0;
  bool first() const { return chunk == 0 && rep == 0; }
  bool last(const Vectors& v) const {
    return chunk + 1 == job->n_chunks && rep + 1 == v.chunks[job->first_chunk + chunk].repeat;
  }
  const Chunk& at(const Vectors& v) const { return v.chunks[job->first_chunk + chunk]; }
  bool advance(const Vectors& v) {  // false when the sequence is finished
    if (++rep == at(v).repeat) rep = 0, ++chunk;
    return chunk < job->n_chunks;
  }
};

// Packs lanes of `width` bits into a port of up to 256 bits, then copies it into Verilator's 32-bit words.
class Packer {
 public:
  void put(int lane, int width, int32_t value) {
    uint64_t v = uint64_t(uint32_t(value)) & ((uint64_t(1) << width) - 1);
    int lsb = lane * width;
    bits_[lsb / 64] |= v << (lsb % 64);
    if (lsb % 64 + width > 64) bits_[lsb / 64 + 1] |= v >> (64 - lsb % 64);
  }
  template <typename Words>
  void store(Words& words, int n_words) const {
    for (int i = 0; i < n_words; ++i) words[i] = uint32_t(bits_[i / 2] >> (32 * (i % 2)));
  }
  uint64_t word64() const { return bits_[0]; }

 private:
  uint64_t bits_[4] = {};
};

class Bench {
 public:
  Bench(const Vectors& v, int bubble_percent, uint32_t seed)
      : v_(v), bubble_percent_(bubble_percent), rng_(seed), results_(2 * v.jobs.size(), 0) {
    lane_.clk = 0;
    lane_.rst = 1;
    for (int i = 0; i < 4; ++i) tick();
    lane_.rst = 0;
  }

  void run();
  const std::vector<uint32_t>& results() const { return results_; }
  uint64_t cycles() const { return cycle_; }
  int latency() const { return latency_; }

 private:
  bool bubble() { return bubble_percent_ > 0 && int(rng_() % 100) < bubble_percent_; }
  void expect_result_of_this_cycle(size_t index) { pending_.push_back({cycle_, index}); }
  void tick();
  void drive_idle();

  const Vectors& v_;
  int bubble_percent_;
  std::mt19937 rng_;
  VerilatedContext context_;
  Lane lane_{&context_};
  uint64_t cycle_ = 0;
  int latency_ = -1;
  struct Pending {
    uint64_t cycle;
    size_t index;
  };
  std::deque<Pending> pending_;  // last chunks presented, oldest first: results come out in this order
  std::vector<uint32_t> results_;
};

// One clock cycle: the inputs set for this cycle are sampled at its rising edge. Outputs are read before
// the edge, so a result seen in cycle c left its last chunk in cycle c - latency.
void Bench::tick() {
  lane_.clk = 0;
  lane_.eval();
  if (lane_.out_valid && !lane_.rst) {
    if (pending_.empty()) fail("a result came out that no sequence asked for");
    Pending p = pending_.front();
    pending_.pop_front();
    int latency = int(cycle_ - p.cycle);
    if (latency_ < 0) latency_ = latency;
    if (latency != latency_)
      fail("latency changed from " + std::to_string(latency_) + " to " + std::to_string(latency));
    results_[p.index] = lane_.out_sum;
  }
  lane_.clk = 1;
  lane_.eval();
  ++cycle_;
}

#ifdef PE_LANE_BFP16
// pe_lane_bfp16: three pair slots; slot j owns cycles 2j (lanes 0..7, pixel p's control) and 2j + 1
// (lanes 8..15, pixel q's control) modulo 6.
void Bench::drive_idle() {
  lane_.in_valid = 0;
  lane_.in_first = 0;
  lane_.in_last = 0;
  lane_.in_w = lane_.in_ap = lane_.in_aq = 0;
}

void Bench::run() {
  constexpr int kPairSlots = kInterleave / 2;
  Cursor slots[kPairSlots];
  bool busy[kPairSlots] = {};
  bool idle_turn[kPairSlots] = {};
  size_t next_job = 0, done = 0;
  while (done < v_.jobs.size() || !pending_.empty()) {
    int j = int(cycle_ / 2 % kPairSlots), hi = int(cycle_ % 2);
    if (!hi) {
      if (!busy[j] && next_job < v_.jobs.size()) slots[j] = Cursor{&v_.jobs[next_job++]}, busy[j] = true;
      idle_turn[j] = !busy[j] || bubble();
    }
    lane_.in_hi = hi;
    if (idle_turn[j]) {
      drive_idle();
    } else {
      Cursor& c = slots[j];
      const Chunk& ch = c.at(v_);
      const Job& job = *c.job;
      Packer w, ap, aq;
      for (int l = 0; l < 8; ++l) {
        int lane = 8 * hi + l;
        w.put(l, 8, v_.w_mant[ch.w * kLanes + lane]);
        ap.put(l, 8, v_.a_mant[ch.ap * kLanes + lane]);
        aq.put(l, 8, v_.a_mant[ch.aq * kLanes + lane]);
      }
      lane_.in_w = w.word64();
      lane_.in_ap = ap.word64();
      lane_.in_aq = aq.word64();
      lane_.in_prec = job.precision;
      lane_.in_ew = uint8_t(v_.w_exp[ch.w]);
      lane_.in_ea = uint8_t(v_.a_exp[hi ? ch.aq : ch.ap]);
      lane_.in_valid = 1;
      lane_.in_first = c.first();
      lane_.in_last = c.last(v_);
      if (c.last(v_)) expect_result_of_this_cycle(2 * size_t(&job - v_.jobs.data()) + hi);
      if (hi && !c.advance(v_)) busy[j] = false, ++done;
    }
    tick();
  }
  for (int i = 0; i < 2 * kInterleave; ++i) drive_idle(), tick();  // nothing more may come out
}
#else
// pe_lane_bfp20: six slots, slot s owns the cycles congruent to s modulo 6. Job i's sequences p and q are
// the (2i)th and (2i+1)th sequences; each takes the next free slot.
void Bench::drive_idle() {
  lane_.in_valid = 0;
  lane_.in_first = 0;
  lane_.in_last = 0;
}

void Bench::run() {
  struct Seq {
    Cursor cursor;
    int pixel;  // 0: p (activations ap), 1: q (activations aq)
  };
  Seq slots[kInterleave];
  bool busy[kInterleave] = {};
  size_t next_seq = 0, done = 0, total = 2 * v_.jobs.size();
  while (done < total || !pending_.empty()) {
    int s = int(cycle_ % kInterleave);
    if (!busy[s] && next_seq < total) {
      slots[s] = Seq{Cursor{&v_.jobs[next_seq / 2]}, int(next_seq % 2)};
      busy[s] = true;
      ++next_seq;
    }
    if (!busy[s] || bubble()) {
      drive_idle();
    } else {
      Seq& seq = slots[s];
      const Chunk& ch = seq.cursor.at(v_);
      uint32_t a_block = seq.pixel ? ch.aq : ch.ap;
      Packer a, w;
      for (int l = 0; l < kLanes; ++l) {
        a.put(l, 12, v_.a_mant[a_block * kLanes + l]);
        w.put(l, 16, v_.w_mant[ch.w * kLanes + l]);
      }
      a.store(lane_.in_a, 6);
      w.store(lane_.in_w, 8);
      lane_.in_prec = seq.cursor.job->precision;
      lane_.in_ea = uint8_t(v_.a_exp[a_block]);
      lane_.in_ew = uint8_t(v_.w_exp[ch.w]);
      lane_.in_valid = 1;
      lane_.in_first = seq.cursor.first();
      lane_.in_last = seq.cursor.last(v_);
      if (seq.cursor.last(v_)) expect_result_of_this_cycle(2 * size_t(seq.cursor.job - v_.jobs.data()) + seq.pixel);
      if (!seq.cursor.advance(v_)) busy[s] = false, ++done;
    }
    tick();
  }
  for (int i = 0; i < 2 * kInterleave; ++i) drive_idle(), tick();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) fail("usage: pe_lane_tb VECTORS RESULTS [--bubbles PERCENT] [--seed N]");
  int bubbles = 0;
  uint32_t seed = 1;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--bubbles")) bubbles = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seed")) seed = uint32_t(std::strtoul(argv[i + 1], nullptr, 10));
    else fail(std::string("unknown option ") + argv[i]);
  }
  Vectors v = load(argv[1]);
  Bench bench(v, bubbles, seed);
  bench.run();
  std::FILE* out = std::fopen(argv[2], "wb");
  if (!out) fail(std::string("cannot write ") + argv[2]);
  const std::vector<uint32_t>& r = bench.results();
  if (std::fwrite(r.data(), sizeof(uint32_t), r.size(), out) != r.size()) fail("short write");
  std::fclose(out);
  std::printf("sequences=%zu cycles=%llu latency=%d\n", r.size(), (unsigned long long)bench.cycles(),
              bench.latency());
  return 0;
}
