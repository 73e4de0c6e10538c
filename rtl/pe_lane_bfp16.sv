// PE lane, bfp16 (and bfp12): the same arithmetic as pe_lane_bfp20 with 8 DSP48E2 instead of 16, by
// shared-operand packing (chunk_mac_bfp16): one weight block times the activation blocks of two pixels p and
// q, two 8 x 8 products per DSP. Docs: docs/hardware.md, "PE lane (RTL)".
//
//   chunk_mac_bfp16       exact integer sums of the pair, 8 DSP48E2 (WP486 packing, adder tree in DSPs)
//   int_to_fp32           |sum| < 2^18: int -> float32 is exact; times 2^k by adding k to the exponent
//   fp32_interleaved_acc  acc + partial, round to nearest even, 6 accumulators sharing one pipelined adder
//
// Interface (valid-only stream, no back-pressure). A pair takes two consecutive cycles:
//   cycle t   (in_hi = 0): lanes 0..7 of w, ap, aq; in_ea = E_a of p's block, in_first/in_last/in_valid for p
//   cycle t+1 (in_hi = 1): lanes 8..15 of w, ap, aq; in_ea = E_a of q's block, in_first/in_last/in_valid for q
// in_ew is the weight block's exponent in both cycles. Each cycle's control fields belong to the accumulator
// slot (cycle mod INTERLEAVE), so p accumulates in the slot of the hi = 0 cycle and q in the next one; all
// chunks of one accumulation must be presented at cycles congruent modulo INTERLEAVE, in their order. The
// lanes of both pixels must be present in both cycles (zeros where a pixel has no chunk): each pixel's sum
// spans both halves. in_prec: 1 bfp16, 2 bfp12. Mantissas in [-127, 127], exponents in [-50, 50]; drive the
// inputs from registers. out_sum comes LATENCY cycles after the cycle that carried in_last.
module pe_lane_bfp16 (
    input  logic              clk,
    input  logic              rst,
    input  logic              in_valid,
    input  logic              in_hi,
    input  logic              in_first,
    input  logic              in_last,
    input  logic [1:0]        in_prec,
    input  logic [8*8-1:0]    in_w,    // weight mantissas, lane l of this half in bits [8l +: 8]
    input  logic [8*8-1:0]    in_ap,   // activation mantissas of pixel p
    input  logic [8*8-1:0]    in_aq,   // activation mantissas of pixel q
    input  logic signed [7:0] in_ea,
    input  logic signed [7:0] in_ew,
    output logic              out_valid,
    output logic [31:0]       out_sum
);
  localparam int MAC_LATENCY = 7;      // chunk_mac_bfp16, counted from the hi = 0 half
  localparam int CONVERT_LATENCY = 3;  // int_to_fp32 without rounding
  localparam int ACC_LATENCY = 6;      // fp32_interleaved_acc
  // The interface's timing, for readers and for tests/rtl (which checks both against the simulation).
  /* verilator lint_off UNUSEDPARAM */
  localparam int LATENCY = MAC_LATENCY + CONVERT_LATENCY + ACC_LATENCY;  // 16
  localparam int INTERLEAVE = 6;
  /* verilator lint_on UNUSEDPARAM */

  logic signed [7:0] k;
  always_comb k = in_ea + in_ew - (in_prec == 2'd1 ? 8'sd12 : 8'sd4);

  logic signed [18:0] sum_p, sum_q, sum_q_held;
  chunk_mac_bfp16 mac (.clk, .hi(in_hi), .w(in_w), .ap(in_ap), .aq(in_aq), .sum_p, .sum_q);

  // Both sums of a pair are ready in the same cycle, MAC_LATENCY after its hi = 0 half; p's goes to the
  // converter then, with the control bits of the hi = 0 cycle, and q's one cycle later, with those of the
  // hi = 1 cycle. So every cycle's control bits simply wait MAC_LATENCY cycles.
  logic              mac_valid, mac_hi, mac_first, mac_last;
  logic signed [7:0] mac_k;
  pipe #(.W(2), .N(MAC_LATENCY), .RESET(1)) ctl_delay (.clk, .rst, .d({in_valid, in_last}),
                                                      .q({mac_valid, mac_last}));
  pipe #(.W(10), .N(MAC_LATENCY)) k_delay (.clk, .rst(1'b0), .d({in_hi, in_first, k}),
                                           .q({mac_hi, mac_first, mac_k}));
  always_ff @(posedge clk) sum_q_held <= sum_q;

  logic        cv_valid, cv_first, cv_last;
  logic [31:0] partial;
  int_to_fp32 #(.W(19)) convert (
      .clk, .rst, .in_valid(mac_valid), .in_first(mac_first), .in_last(mac_last),
      .in_isum(mac_hi ? sum_q_held : sum_p), .in_k(mac_k),
      .out_valid(cv_valid), .out_first(cv_first), .out_last(cv_last), .out_partial(partial)
  );

  fp32_interleaved_acc acc (
      .clk, .rst, .in_valid(cv_valid), .in_first(cv_first), .in_last(cv_last), .in_partial(partial),
      .out_valid, .out_sum
  );
endmodule
