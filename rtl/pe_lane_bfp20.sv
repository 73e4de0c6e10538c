// PE lane, bfp20: one 16-lane chunk per cycle into an interleaved float32 accumulator (docs/hardware.md,
// "PE lane (RTL)"). For one output element the NPU computes (docs/numerics.md)
//
//   acc = +0.0; for each chunk, in order: acc = acc + (float)(sum_l a[l] * w[l]) * 2^(E_a + E_w - offset)
//
// and this lane does exactly that, bit for bit:
//   chunk_mac_bfp20       exact integer chunk sum, 16 DSP48E2 (one 12 x 16 product each, adder tree in DSPs)
//   int_to_fp32           int32 -> float32, round to nearest even, times 2^k by adding k to the exponent
//   fp32_interleaved_acc  acc + partial, round to nearest even, 6 accumulators sharing one pipelined adder
//
// Interface (valid-only stream, one chunk per cycle, no back-pressure):
//   * The chunk presented at cycle t belongs to accumulator slot (t mod INTERLEAVE). All chunks of one
//     accumulation must be presented at cycles that are congruent modulo INTERLEAVE, in their order; the
//     first carries in_first, the last in_last. A cycle without in_valid leaves its slot unchanged.
//   * out_valid/out_sum: the float32 sum, LATENCY cycles after the in_last chunk was presented.
//   * in_prec is the instruction's precision code: 3 bfp20, 1 bfp16, 2 bfp12 (their narrower mantissas fit
//     the lanes); it only selects the offset (M_a - 1) + (M_w - 1) = 24, 12 or 4.
//   * Mantissas are sign-magnitude values (never -2048 / -32768); exponents are in [-50, 50]. Drive the
//     inputs from registers (the deepest DSP takes them straight into its multiplier).
module pe_lane_bfp20 (
    input  logic              clk,
    input  logic              rst,
    input  logic              in_valid,
    input  logic              in_first,
    input  logic              in_last,
    input  logic [1:0]        in_prec,
    input  logic [16*12-1:0]  in_a,    // activation mantissas, lane l in bits [12l +: 12]
    input  logic [16*16-1:0]  in_w,    // weight mantissas, lane l in bits [16l +: 16]
    input  logic signed [7:0] in_ea,   // activation block exponent
    input  logic signed [7:0] in_ew,   // weight block exponent
    output logic              out_valid,
    output logic [31:0]       out_sum
);
  localparam int MAC_LATENCY = 6;      // chunk_mac_bfp20
  localparam int CONVERT_LATENCY = 4;  // int_to_fp32 with rounding
  localparam int ACC_LATENCY = 6;      // fp32_interleaved_acc
  // The interface's timing, for readers and for tests/rtl (which checks both against the simulation).
  /* verilator lint_off UNUSEDPARAM */
  localparam int LATENCY = MAC_LATENCY + CONVERT_LATENCY + ACC_LATENCY;  // 16
  localparam int INTERLEAVE = 6;       // the adder's loop length
  /* verilator lint_on UNUSEDPARAM */

  // Scale exponent of the chunk: k in [-124, 96], an int8.
  logic signed [7:0] k;
  always_comb k = in_ea + in_ew - (in_prec == 2'd3 ? 8'sd24 : in_prec == 2'd1 ? 8'sd12 : 8'sd4);

  logic signed [30:0] isum;
  chunk_mac_bfp20 mac (.clk, .a(in_a), .w(in_w), .isum);

  // The chunk's control bits and k wait for its sum.
  logic              mac_valid, mac_first, mac_last;
  logic signed [7:0] mac_k;
  pipe #(.W(2), .N(MAC_LATENCY), .RESET(1)) ctl_delay (.clk, .rst, .d({in_valid, in_last}),
                                                      .q({mac_valid, mac_last}));
  pipe #(.W(9), .N(MAC_LATENCY)) k_delay (.clk, .rst(1'b0), .d({in_first, k}), .q({mac_first, mac_k}));

  logic        cv_valid, cv_first, cv_last;
  logic [31:0] partial;
  int_to_fp32 #(.W(31)) convert (
      .clk, .rst, .in_valid(mac_valid), .in_first(mac_first), .in_last(mac_last), .in_isum(isum),
      .in_k(mac_k), .out_valid(cv_valid), .out_first(cv_first), .out_last(cv_last), .out_partial(partial)
  );

  fp32_interleaved_acc acc (
      .clk, .rst, .in_valid(cv_valid), .in_first(cv_first), .in_last(cv_last), .in_partial(partial),
      .out_valid, .out_sum
  );
endmodule
