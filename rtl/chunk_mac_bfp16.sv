// Exact integer sums of two bfp16 (or bfp12) chunks that share their weight block: the same output channel
// at two pixels p and q. Mantissas are in [-127, 127] (8-bit lanes).
//
//   sum_p = sum over 16 lanes of ap[l] * w[l],   sum_q = sum over 16 lanes of aq[l] * w[l]
//
// Shared-operand packing (Xilinx WP486, "Deep Learning with INT8 Optimization on Xilinx Devices"): the
// pre-adder forms aq * 2^19 + ap in the 27-bit multiplier port, so one 27 x 18 multiply gives both products,
// (aq * 2^19 + ap) * w = (aq * w) * 2^19 + ap * w. Summed over the 16 lanes, the lower field L = sum_p has
// |L| <= 16 * 127 * 127 = 258064 < 2^18, so it fits 19 bits and cannot reach the upper field; but when
// L < 0 its two's complement borrows 1 from the upper field: P[47:19] = sum_q - 1. That is the sign
// correction of the lower product. Here it is folded into the DSP: one leaf slice adds the constant
// RND = 2^17 in each half (2^18 per pair), which makes the lower field L + 2^18, in (0, 2^19), never
// negative, so P[37:19] = sum_q exactly and sum_p = P[18:0] - 2^18 (flip bit 18). No fabric adder at all.
//
// 8 DSP48E2 slices take 8 lanes per cycle: the pair arrives as two halves in consecutive cycles, lanes 0..7
// with hi = 0, then lanes 8..15 with hi = 1. The slices form a tree like chunk_mac_bfp20's (slice i >= 1 adds
// slices 2i via PCIN and 2i+1 via C), under a root slice 0 that adds slice 1 through PCIN and accumulates the
// two halves in its own P register (W = P while the hi half passes).
//
// Latency: sum_p and sum_q are valid 7 cycles after the hi = 0 half was presented, for one cycle. Drive the
// inputs from registers.
module chunk_mac_bfp16 (
    input  logic               clk,
    input  logic               hi,    // 0: lanes 0..7 of a pair, 1: lanes 8..15 (the next cycle)
    input  logic [8*8-1:0]     w,     // lane l in bits [8l +: 8], two's complement
    input  logic [8*8-1:0]     ap,    // pixel p (lower field)
    input  logic [8*8-1:0]     aq,    // pixel q (upper field)
    output logic signed [18:0] sum_p,
    output logic signed [18:0] sum_q
);
  localparam int NODES = 8;
  localparam int MAX_DEPTH = 3;
  localparam int RND_LEAF = 7;

  logic signed [47:0] p[0:NODES-1], pcout[0:NODES-1];
  logic               root_acc;
  // The root's W = P must be selected while it adds the hi half: that add happens MAX_DEPTH + 2 = 5 cycles
  // after the hi half came in, and the slice registers OPMODE one cycle ahead (OPMODEREG = 1).
  pipe #(.W(1), .N(MAX_DEPTH + 1)) acc_delay (.clk, .rst(1'b0), .d(hi), .q(root_acc));

  for (genvar i = 0; i < NODES; i++) begin : g_node
    localparam int DEPTH = i == 0 ? 0 : $clog2(i + 1);  // floor(log2(i)) + 1 under the root
    localparam int SKEW = MAX_DEPTH - DEPTH;
    // Inside the slice: A/D register, then the pre-adder register ADREG for every slice that waits at all.
    localparam int ADREG = SKEW > 0 ? 1 : 0;
    localparam int FREG = SKEW > 1 ? SKEW - 1 : 0;
    localparam int LEFT = i == 0 ? 1 : 2 * i;      // child through PCIN
    localparam int RIGHT = i == 0 ? NODES : 2 * i + 1;  // child through C (none for the root)

    logic [7:0] w_l, ap_l, aq_l;
    pipe #(.W(24), .N(FREG)) skew (.clk, .rst(1'b0), .d({w[8*i+:8], ap[8*i+:8], aq[8*i+:8]}),
                                   .q({w_l, ap_l, aq_l}));

    logic signed [47:0] from_pcin, from_c;
    if (LEFT < NODES) begin : g_pcin
      assign from_pcin = pcout[LEFT];
    end else begin : g_no_pcin
      assign from_pcin = '0;
    end
    if (RIGHT < NODES) begin : g_c
      assign from_c = p[RIGHT];
    end else begin : g_no_c
      assign from_c = '0;
    end

    dsp48e2_node #(
        .AREG(1), .BREG(1 + ADREG), .PREADD(1), .ADREG(ADREG), .USE_PCIN(LEFT < NODES),
        .W_SEL(i == 0 ? "P" : RIGHT < NODES ? "C" : i == RND_LEAF ? "RND" : "ZERO"),
        .RND(i == RND_LEAF ? 48'd1 << 17 : 48'd0)
    ) slice (
        .clk, .a({aq_l, 19'd0}), .d({{19{ap_l[7]}}, ap_l}), .b({{10{w_l[7]}}, w_l}), .c(from_c),
        .pcin(from_pcin), .acc(root_acc), .p(p[i]), .pcout(pcout[i])
    );
  end

  assign sum_p = {~p[0][18], p[0][17:0]};
  assign sum_q = p[0][37:19];
endmodule
