/* build_plan: validation, decoding and weight repacking, once per program (plan.h). */
#include "plan.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "npu_format.h" /* shared with the HLS kernel: validation, precisions, weight packing, chunks */

namespace bwn {
namespace {

Insn decode(const uint32_t *w) {
    Insn d;
    bw_decode_insn(w, &d);
    return d;
}

/* Validation: docs/isa.md's checks in its order, the per-instruction ones the kernel's own (npu_format.h), and the
 * host-only framing that Program.from_bytes checks too. The loader never trusts its caller: it sees raw blobs. */
uint32_t validate(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes) {
    if (nwords < BW_HEADER_WORDS) return BW_STATUS_BAD_FIELD;
    const uint32_t *h = words;
    uint32_t s = bw_check_header(h);
    if (s != BW_STATUS_OK) return s;
    if (nwords != BW_HEADER_WORDS + (uint64_t)h[BW_H_NUM_INSTRUCTIONS] * BW_INSN_WORDS) return BW_STATUS_BAD_FIELD;
    if (nbytes != h[BW_H_WEIGHTS_BYTES]) return BW_STATUS_OUT_OF_BOUNDS;
    s = bw_check_io(h);
    if (s != BW_STATUS_OK) return s;
    for (uint32_t i = 0; i < h[BW_H_NUM_INSTRUCTIONS]; ++i) {
        const Insn d = decode(words + BW_HEADER_WORDS + (size_t)i * BW_INSN_WORDS);
        s = bw_check_insn(d, weights, h[BW_H_ARENA_WORDS], h[BW_H_WEIGHTS_BYTES]);
        if (s != BW_STATUS_OK) return s;
    }
    return BW_STATUS_OK;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Weight repacking */

using Chunk = bw_chunk;

/* The chunks of group g (npu_format.h bw_chunk_at), in ascending channel order. */
std::vector<Chunk> group_chunks(uint32_t g, uint32_t cg) {
    std::vector<Chunk> out;
    const uint32_t base = g * cg, end = base + cg;
    for (uint32_t c = base; c < end; c += out.back().len) out.push_back(bw_chunk_at(c, base, end));
    return out;
}

AlignedArray<float> load_bias(const Insn &d, const uint8_t *weights) {
    AlignedArray<float> bias(d.out_c + kLanes); /* the kernels load whole 16-lane vectors */
    for (uint32_t o = 0; o < d.out_c; ++o) bias.data()[o] = bw_f32_le(weights + d.bias_off + 4ull * o);
    return bias;
}

/* The weights of one tile, tap and virtual block (kernel_api.h kTileWords): pair vectors j = 0..7, where lane l
 * holds output o0 + l's int16 weights for channels 2j and 2j+1 of the chunk's activation block (zero outside the
 * chunk), then exponent bits (E_w - (M_a-1) - (M_w-1)) << 23 (modulo 2^32), so that adding the activation's
 * (E_a + 127) << 23 gives the float32 scale 2^k. */
void pack_virtual_block(int32_t *w, const Insn &d, const uint8_t *weights, const Chunk &k, uint32_t o0, uint32_t tap,
                        uint32_t n) {
    const int mshift = bw_scale_shift(d.prec);
    int16_t lanes[kLanes][BW_BLOCK] = {}; /* [output lane][activation lane] */
    for (uint32_t l = 0; l < kLanes; ++l) {
        /* spare lanes (l >= n) take the last output's exponent: a finite scale for a result never stored */
        const uint64_t blk = bw_dense_weight_block(d, o0 + std::min(l, n - 1), tap, k.wb);
        for (uint32_t i = 0; l < n && i < k.len; ++i)
            lanes[l][k.al + i] =
                (int16_t)bw_weight_lane(weights + d.mant_off + blk * bw_block_bytes(d.prec), d.prec, (int)(k.wl + i));
        const int ew = (int8_t)weights[d.exp_off + blk];
        w[kPairs * kLanes + l] = (int32_t)((uint32_t)(ew - mshift) << 23);
    }
    for (int j = 0; j < kPairs; ++j)
        for (int l = 0; l < kLanes; ++l)
            w[j * kLanes + l] =
                (int32_t)((uint32_t)(uint16_t)lanes[l][2 * j] | ((uint32_t)(uint16_t)lanes[l][2 * j + 1] << 16));
}

/* Dense and grouped convs: tiles of up to 16 output channels inside each group, one virtual block per chunk of
 * the group, and per tile the weights [tap][virtual block] (pack_virtual_block). */
void repack_dense(ConvPlan &p, const uint8_t *weights) {
    const Insn &d = p.d;
    const uint32_t taps = d.kh * d.kw, cg = d.in_c / d.groups, opg = d.out_c / d.groups;

    std::vector<std::vector<Chunk>> chunks(d.groups);
    std::vector<size_t> first_vb(d.groups);
    uint64_t words = 0;
    for (uint32_t g = 0; g < d.groups; ++g) {
        chunks[g] = group_chunks(g, cg);
        first_vb[g] = p.vblocks.size();
        for (const Chunk &k : chunks[g]) p.vblocks.push_back({k.ab, k.al / 2, (k.al + k.len + 1) / 2});
        words += (uint64_t)bw_ceil16(opg) * taps * chunks[g].size() * kTileWords;
    }
    p.wpack = AlignedArray<int32_t>(words);

    int32_t *w = p.wpack.data();
    for (uint32_t g = 0; g < d.groups; ++g) {
        for (uint32_t o0 = g * opg; o0 < (g + 1) * opg; o0 += kLanes) {
            const uint32_t n = std::min<uint32_t>(kLanes, (g + 1) * opg - o0);
            p.tiles.push_back({o0, n, p.vblocks.data() + first_vb[g], (uint32_t)chunks[g].size(), w});
            for (uint32_t tap = 0; tap < taps; ++tap) {
                for (const Chunk &k : chunks[g]) {
                    pack_virtual_block(w, d, weights, k, o0, tap, n);
                    w += kTileWords;
                }
            }
        }
    }
    /* tiles of one group share their virtual blocks, so pairs of them can run in one micro-kernel call */
    for (uint32_t t = 0; t < p.tiles.size();) {
        const bool pair = t + 1 < p.tiles.size() && p.tiles[t + 1].vb == p.tiles[t].vb;
        p.units.push_back({t, pair ? 2u : 1u});
        t += pair ? 2 : 1;
    }
}

/* Depthwise: every weight dequantized to an exact float32, m * 2^(E_w - (M_w-1)), laid out [tap][channel]. */
void repack_depthwise(ConvPlan &p, const uint8_t *weights) {
    const Insn &d = p.d;
    const uint32_t taps = d.kh * d.kw, nb = bw_ceil16(d.in_c);
    const int wbits = bw_weight_bits(d.prec);
    p.wdw = AlignedArray<float>((uint64_t)taps * nb * kLanes);
    for (uint32_t tap = 0; tap < taps; ++tap) {
        for (uint32_t c = 0; c < d.in_c; ++c) {
            const uint64_t blk = bw_depthwise_weight_block(d, tap, c / BW_BLOCK);
            const int m = bw_weight_lane(weights + d.mant_off + blk * bw_block_bytes(d.prec), d.prec, c % BW_BLOCK);
            const int ew = (int8_t)weights[d.exp_off + blk];
            p.wdw.data()[(uint64_t)tap * nb * kLanes + c] = (float)m * bw_pow2f(ew - (wbits - 1));
        }
    }
}

std::unique_ptr<ConvPlan> plan_conv(const Insn &d, const uint8_t *weights) {
    auto p = std::make_unique<ConvPlan>();
    p->d = d;
    p->bias = load_bias(d, weights);
    if (bw_is_depthwise(d)) repack_depthwise(*p, weights);
    else repack_dense(*p, weights);
    p->conv = Conv{&p->d,          bw_ceil16(d.in_c), bw_act_bits(d.prec), p->bias.data(),
                   p->tiles.data(), p->units.data(),  (uint32_t)p->units.size(),
                   bw_is_depthwise(d) ? p->wdw.data() : nullptr};
    return p;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Arena words read before written */

class Intervals {
  public:
    void add(uint64_t b, uint64_t e) {
        if (b >= e) return;
        auto it = m_.upper_bound(b);
        if (it != m_.begin() && std::prev(it)->second >= b) {
            --it;
            b = it->first;
        }
        while (it != m_.end() && it->first <= e) {
            e = std::max(e, it->second);
            it = m_.erase(it);
        }
        m_[b] = e;
    }
    /* the parts of [b, e) not covered */
    void gaps(uint64_t b, uint64_t e, Intervals &out) const {
        auto it = m_.upper_bound(b);
        if (it != m_.begin() && std::prev(it)->second > b) b = std::prev(it)->second;
        for (; b < e && it != m_.end() && it->first < e; ++it) {
            out.add(b, it->first);
            b = std::max(b, it->second);
        }
        out.add(b, e);
    }
    std::vector<Range> ranges() const {
        std::vector<Range> r;
        for (const auto &kv : m_) r.push_back({kv.first, kv.second});
        return r;
    }

  private:
    std::map<uint64_t, uint64_t> m_; /* begin -> end, disjoint and not touching */
};

uint64_t words_of(uint32_t h, uint32_t w, uint32_t c) { return (uint64_t)h * w * c; }

std::vector<Range> unwritten_reads(const Plan &plan) {
    const uint32_t *h = plan.header;
    Intervals written, zero;
    written.add(h[BW_H_INPUT_OFFSET], h[BW_H_INPUT_OFFSET] + plan.input_words());
    for (const Step &s : plan.steps) {
        const Insn &d = s.d;
        const uint64_t in = words_of(d.in_h, d.in_w, d.in_c), out = words_of(d.out_h, d.out_w, d.out_c);
        written.gaps(d.in_off, d.in_off + in, zero);
        if (d.op == BW_OP_ADD) written.gaps(d.in2_off, d.in2_off + in, zero);
        if (d.op == BW_OP_CONCAT) written.gaps(d.in2_off, d.in2_off + words_of(d.in_h, d.in_w, d.out_c - d.in_c), zero);
        if (d.op == BW_OP_CONV2D && d.has_res) written.gaps(d.res_off, d.res_off + out, zero);
        written.add(d.out_off, d.out_off + out);
    }
    written.gaps(h[BW_H_OUTPUT_OFFSET], h[BW_H_OUTPUT_OFFSET] + plan.output_words(), zero);
    return zero.ranges();
}

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

/* Scratch for the quantized input of the largest CONV2D (kernel_api.h Buffers). */
void size_scratch(Plan &plan) {
    for (const Step &s : plan.steps) {
        if (!s.conv) continue;
        const Insn &d = s.d;
        const uint64_t pixels = (uint64_t)d.in_h * d.in_w, blocks = bw_ceil16(d.in_c);
        if (s.conv->conv.wdw) {
            plan.qf_bytes = std::max<size_t>(plan.qf_bytes, align64(pixels * blocks * kLanes * sizeof(float)));
        } else { /* + the zero pixel */
            plan.qm_bytes = std::max<size_t>(plan.qm_bytes, align64((pixels + 1) * blocks * kLanes * sizeof(int16_t)));
            plan.qe_bytes = std::max<size_t>(plan.qe_bytes, align64((pixels + 1) * blocks * sizeof(int32_t)));
        }
    }
}

} // namespace

uint64_t Plan::input_words() const {
    return words_of(header[BW_H_INPUT_H], header[BW_H_INPUT_W], header[BW_H_INPUT_C]);
}

uint64_t Plan::output_words() const {
    return words_of(header[BW_H_OUTPUT_H], header[BW_H_OUTPUT_W], header[BW_H_OUTPUT_C]);
}

uint32_t build_plan(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes,
                    std::unique_ptr<Plan> &plan) {
    const uint32_t status = validate(words, nwords, weights, nbytes);
    if (status != BW_STATUS_OK) return status;
    auto p = std::make_unique<Plan>();
    std::memcpy(p->header, words, sizeof p->header);
    p->steps.resize(p->header[BW_H_NUM_INSTRUCTIONS]);
    for (size_t i = 0; i < p->steps.size(); ++i) {
        Step &s = p->steps[i];
        s.d = decode(words + BW_HEADER_WORDS + i * BW_INSN_WORDS);
        if (s.d.op == BW_OP_CONV2D) s.conv = plan_conv(s.d, weights);
    }
    p->zero_ranges = unwritten_reads(*p);
    size_scratch(*p);
    plan = std::move(p);
    return BW_STATUS_OK;
}

} // namespace bwn
