/* build_plan: validation, decoding and weight repacking, once per program (plan.h). */
#include "plan.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace bwn {
namespace {

Insn decode(const uint32_t *w) {
    Insn d;
    bw_decode_insn(w, &d);
    return d;
}

uint64_t ceil16(uint64_t c) { return (c + BW_BLOCK - 1) / BW_BLOCK; }

int act_bits(uint32_t prec) {
    return prec == BW_PREC_BFP12 ? BW_MBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_MBITS_BFP20 : BW_MBITS_BFP16);
}

int weight_bits(uint32_t prec) {
    return prec == BW_PREC_BFP12 ? BW_WBITS_BFP12 : (prec == BW_PREC_BFP20 ? BW_WBITS_BFP20 : BW_WBITS_BFP16);
}

uint64_t block_bytes(uint32_t prec) {
    return prec == BW_PREC_BFP12 ? BW_BLOCK_BYTES_BFP12
                                 : (prec == BW_PREC_BFP20 ? BW_BLOCK_BYTES_BFP20 : BW_BLOCK_BYTES_BFP16);
}

uint64_t weight_blocks(const Insn &d) {
    const uint64_t taps = (uint64_t)d.kh * d.kw;
    return is_depthwise(d) ? taps * ceil16(d.in_c) : (uint64_t)d.out_c * taps * ceil16(d.in_c / d.groups);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Validation: the kernel's checks, in its order (docs/isa.md) */

/* [offset, offset + h*w*c) inside [0, limit); like the kernel, h*w must fit 32 bits */
bool tensor_fits(uint32_t offset, uint32_t h, uint32_t w, uint32_t c, uint64_t limit) {
    const uint64_t hw = (uint64_t)h * w;
    return hw <= 0xFFFFFFFFull && (uint64_t)offset + hw * c <= limit;
}

bool bytes_fit(uint32_t offset, uint64_t n, uint64_t limit) { return n <= 0xFFFFFFFFFFull && offset + n <= limit; }

bool known_opcode(uint32_t op) { return op >= BW_OP_CONV2D && op <= BW_OP_PAD; }

bool fields_ok(const Insn &d) {
    if (d.act > BW_ACT_RELU6) return false;
    switch (d.op) {
    case BW_OP_CONV2D:
        return (d.prec == BW_PREC_BFP16 || d.prec == BW_PREC_BFP12 || d.prec == BW_PREC_BFP20) && d.groups != 0 &&
               d.in_c % d.groups == 0 && d.out_c % d.groups == 0 && d.in_c != 0 && d.out_c != 0 &&
               d.in_c <= BW_MAX_CHANNELS && d.out_c <= BW_MAX_CHANNELS && d.kh && d.kw && d.sh && d.sw &&
               d.has_res <= 1 && d.mant_off % 16 == 0 && d.bias_off % 4 == 0;
    case BW_OP_MAXPOOL:
    case BW_OP_AVGPOOL:
        return d.kh && d.kw && d.sh && d.sw && d.out_c == d.in_c;
    case BW_OP_GLOBAL_AVGPOOL:
        return d.out_h == 1 && d.out_w == 1 && d.out_c == d.in_c && d.in_c <= BW_MAX_CHANNELS;
    case BW_OP_ADD:
    case BW_OP_ACTIVATION:
        return d.out_h == d.in_h && d.out_w == d.in_w && d.out_c == d.in_c;
    default: /* PAD */
        return d.out_c == d.in_c && (uint64_t)d.out_h == (uint64_t)d.in_h + d.pt + d.pb &&
               (uint64_t)d.out_w == (uint64_t)d.in_w + d.pl + d.pr;
    }
}

bool memory_ok(const Insn &d, uint64_t arena_words, uint64_t weights_bytes) {
    if (!tensor_fits(d.in_off, d.in_h, d.in_w, d.in_c, arena_words)) return false;
    if (!tensor_fits(d.out_off, d.out_h, d.out_w, d.out_c, arena_words)) return false;
    if (d.op == BW_OP_ADD && !tensor_fits(d.in2_off, d.in_h, d.in_w, d.in_c, arena_words)) return false;
    if (d.op != BW_OP_CONV2D) return true;
    if (d.has_res && !tensor_fits(d.res_off, d.out_h, d.out_w, d.out_c, arena_words)) return false;
    const uint64_t blocks = weight_blocks(d);
    return (uint64_t)d.kh * d.kw <= 0xFFFFFFFFull && bytes_fit(d.mant_off, blocks * block_bytes(d.prec), weights_bytes) &&
           bytes_fit(d.exp_off, blocks, weights_bytes) && bytes_fit(d.bias_off, 4ull * d.out_c, weights_bytes);
}

bool exponents_ok(const Insn &d, const uint8_t *weights) {
    if (d.op != BW_OP_CONV2D) return true;
    const uint64_t n = weight_blocks(d);
    for (uint64_t i = 0; i < n; ++i) {
        const int e = (int8_t)weights[d.exp_off + i];
        if (e < BW_EXP_MIN || e > BW_EXP_MAX) return false;
    }
    return true;
}

uint32_t validate(const uint32_t *words, size_t nwords, const uint8_t *weights, size_t nbytes) {
    if (nwords < BW_HEADER_WORDS) return BW_STATUS_BAD_FIELD;
    const uint32_t *h = words;
    if (h[BW_H_MAGIC] != BW_MAGIC) return BW_STATUS_BAD_MAGIC;
    if (h[BW_H_ISA_VERSION] != BW_ISA_VERSION) return BW_STATUS_BAD_VERSION;
    if (h[BW_H_INSN_WORDS] != BW_INSN_WORDS) return BW_STATUS_BAD_FIELD;
    if (nwords != BW_HEADER_WORDS + (uint64_t)h[BW_H_NUM_INSTRUCTIONS] * BW_INSN_WORDS) return BW_STATUS_BAD_FIELD;
    if (nbytes != h[BW_H_WEIGHTS_BYTES]) return BW_STATUS_OUT_OF_BOUNDS;
    const uint64_t arena = h[BW_H_ARENA_WORDS];
    if (!tensor_fits(h[BW_H_INPUT_OFFSET], h[BW_H_INPUT_H], h[BW_H_INPUT_W], h[BW_H_INPUT_C], arena) ||
        !tensor_fits(h[BW_H_OUTPUT_OFFSET], h[BW_H_OUTPUT_H], h[BW_H_OUTPUT_W], h[BW_H_OUTPUT_C], arena))
        return BW_STATUS_OUT_OF_BOUNDS;
    for (uint32_t i = 0; i < h[BW_H_NUM_INSTRUCTIONS]; ++i) {
        const Insn d = decode(words + BW_HEADER_WORDS + (size_t)i * BW_INSN_WORDS);
        if (!known_opcode(d.op)) return BW_STATUS_BAD_OPCODE;
        if (!fields_ok(d)) return BW_STATUS_BAD_FIELD;
        if (!memory_ok(d, arena, nbytes)) return BW_STATUS_OUT_OF_BOUNDS;
        if (!exponents_ok(d, weights)) return BW_STATUS_BAD_FIELD;
    }
    return BW_STATUS_OK;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Weight repacking */

/* Mantissa of lane l of a packed weight block (docs/isa.md "Weights blob"). */
int weight_lane(const uint8_t *block, uint32_t prec, int l) {
    if (prec == BW_PREC_BFP16) return (int8_t)block[l];
    if (prec == BW_PREC_BFP20) return (int16_t)(uint16_t)(block[2 * l] | (block[2 * l + 1] << 8));
    const unsigned nib = (l & 1) ? block[l >> 1] >> 4 : block[l >> 1] & 0xFu;
    return (int)(nib ^ 8u) - 8; /* sign-extend 4 bits */
}

float pow2f(int k) {
    const uint32_t u = (uint32_t)(k + 127) << 23;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

/* A chunk (docs/numerics.md "Dot product"): channels [c, c + len) of the input share activation block ab
 * (lanes al..) and group-local weight block wb (lanes wl..). */
struct Chunk {
    uint32_t ab, al, wb, wl, len;
};

/* The chunks of group g, in ascending channel order: cut where the global or the group-local channel index is a
 * multiple of 16. With groups = 1 or Cg a multiple of 16 each chunk is one whole block pair. */
std::vector<Chunk> group_chunks(uint32_t g, uint32_t cg) {
    std::vector<Chunk> out;
    const uint32_t base = g * cg, end = base + cg;
    for (uint32_t c = base; c < end;) {
        Chunk k{c / BW_BLOCK, c % BW_BLOCK, (c - base) / BW_BLOCK, (c - base) % BW_BLOCK, 0};
        k.len = std::min({(uint32_t)BW_BLOCK - k.al, (uint32_t)BW_BLOCK - k.wl, end - c});
        out.push_back(k);
        c += k.len;
    }
    return out;
}

AlignedArray<float> load_bias(const Insn &d, const uint8_t *weights) {
    AlignedArray<float> bias(d.out_c + kLanes); /* the kernels load whole 16-lane vectors */
    std::memcpy(bias.data(), weights + d.bias_off, 4ull * d.out_c); /* float32 little-endian, as on x86 */
    return bias;
}

/* The weights of one tile, tap and virtual block (kernel_api.h kTileWords): pair vectors j = 0..7, where lane l
 * holds output o0 + l's int16 weights for channels 2j and 2j+1 of the chunk's activation block (zero outside the
 * chunk), then exponent bits (E_w - (M_a-1) - (M_w-1)) << 23 (modulo 2^32), so that adding the activation's
 * (E_a + 127) << 23 gives the float32 scale 2^k. `first_block` is the weight block index of (o0, tap, group-local block 0). */
void pack_virtual_block(int32_t *w, const Insn &d, const uint8_t *weights, const Chunk &k, uint64_t first_block,
                        uint64_t blocks_per_output, uint32_t n) {
    const int mshift = (act_bits(d.prec) - 1) + (weight_bits(d.prec) - 1);
    int16_t lanes[kLanes][BW_BLOCK] = {}; /* [output lane][activation lane] */
    for (uint32_t l = 0; l < kLanes; ++l) {
        /* spare lanes (l >= n) take the last output's exponent: a finite scale for a result never stored */
        const uint64_t blk = first_block + std::min(l, n - 1) * blocks_per_output + k.wb;
        for (uint32_t i = 0; l < n && i < k.len; ++i)
            lanes[l][k.al + i] = (int16_t)weight_lane(weights + d.mant_off + blk * block_bytes(d.prec), d.prec, k.wl + i);
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
    const uint64_t nbw = ceil16(cg), blocks_per_output = taps * nbw;

    std::vector<std::vector<Chunk>> chunks(d.groups);
    std::vector<size_t> first_vb(d.groups);
    uint64_t words = 0;
    for (uint32_t g = 0; g < d.groups; ++g) {
        chunks[g] = group_chunks(g, cg);
        first_vb[g] = p.vblocks.size();
        for (const Chunk &k : chunks[g]) p.vblocks.push_back({k.ab, k.al / 2, (k.al + k.len + 1) / 2});
        words += ceil16(opg) * taps * chunks[g].size() * kTileWords;
    }
    p.wpack = AlignedArray<int32_t>(words);

    int32_t *w = p.wpack.data();
    for (uint32_t g = 0; g < d.groups; ++g) {
        for (uint32_t o0 = g * opg; o0 < (g + 1) * opg; o0 += kLanes) {
            const uint32_t n = std::min<uint32_t>(kLanes, (g + 1) * opg - o0);
            p.tiles.push_back({o0, n, p.vblocks.data() + first_vb[g], (uint32_t)chunks[g].size(), w});
            for (uint32_t tap = 0; tap < taps; ++tap) {
                for (const Chunk &k : chunks[g]) {
                    pack_virtual_block(w, d, weights, k, o0 * blocks_per_output + tap * nbw, blocks_per_output, n);
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
    const uint32_t taps = d.kh * d.kw, nb = (uint32_t)ceil16(d.in_c);
    const int wbits = weight_bits(d.prec);
    p.wdw = AlignedArray<float>((uint64_t)taps * nb * kLanes);
    for (uint32_t tap = 0; tap < taps; ++tap) {
        for (uint32_t c = 0; c < d.in_c; ++c) {
            const uint64_t blk = (uint64_t)tap * nb + c / BW_BLOCK;
            const int m = weight_lane(weights + d.mant_off + blk * block_bytes(d.prec), d.prec, c % BW_BLOCK);
            const int ew = (int8_t)weights[d.exp_off + blk];
            p.wdw.data()[(uint64_t)tap * nb * kLanes + c] = (float)m * pow2f(ew - (wbits - 1));
        }
    }
}

std::unique_ptr<ConvPlan> plan_conv(const Insn &d, const uint8_t *weights) {
    auto p = std::make_unique<ConvPlan>();
    p->d = d;
    p->bias = load_bias(d, weights);
    if (is_depthwise(d)) repack_depthwise(*p, weights);
    else repack_dense(*p, weights);
    p->conv = Conv{&p->d,          (uint32_t)ceil16(d.in_c), act_bits(d.prec), p->bias.data(),
                   p->tiles.data(), p->units.data(),         (uint32_t)p->units.size(),
                   is_depthwise(d) ? p->wdw.data() : nullptr};
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
        const uint64_t pixels = (uint64_t)d.in_h * d.in_w, blocks = ceil16(d.in_c);
        if (s.conv->conv.wdw) {
            plan.qf_bytes = std::max<size_t>(plan.qf_bytes, align64(pixels * blocks * kLanes * sizeof(float)));
        } else { /* + the zero pixel */
            plan.qm_bytes = std::max<size_t>(plan.qm_bytes, align64((pixels + 1) * blocks * kLanes * sizeof(int16_t)));
            plan.qe_bytes = std::max<size_t>(plan.qe_bytes, align64((pixels + 1) * blocks * sizeof(int32_t)));
        }
    }
}

} // namespace

bool is_depthwise(const Insn &d) { return d.groups == d.in_c && d.out_c == d.in_c; }

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
