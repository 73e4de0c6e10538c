// L-way interleaved float32 accumulator: acc = acc + partial, round to nearest even, one add per cycle.
//
// The adder is a 6-stage pipeline whose result register feeds straight back into its first stage, so the
// pipeline itself holds INTERLEAVE = 6 independent accumulators ("slots"): the partial presented at cycle t
// is added to slot (t mod 6), and the sum it produces is the operand of the partial presented at t + 6.
// Each slot therefore sees its partials strictly in the order they were presented (docs/numerics.md fixes
// that order), while the adder accepts a new add every cycle. A cycle without a valid partial adds +0.0,
// which leaves any accumulator unchanged (acc is never -0.0: it starts at +0.0, and x + y is -0.0 under
// round-to-nearest only if both are -0.0), so bubbles are free.
//
// The adder is IEEE 754 binary32 addition with round-to-nearest-even, restricted to what the NPU can
// produce (docs/hardware.md, "PE lane (RTL)", has the argument):
//   * every operand is +0.0 or a normal number: partials are 0 or in [2^-124, 2^106), every sum of
//     multiples of 2^-124 rounds to a multiple of 2^-124, so no subnormal ever appears: no subnormal path;
//   * no NaN can arise (partials are finite). Overflow needs more than 2^21 chunks in one accumulation, but a
//     CONV2D can have that many, so it is handled exactly, as the kernel and the emulator do: a sum that
//     rounds past FLT_MAX becomes +-Inf, and Inf + finite = Inf. It costs a flag and the result register's
//     synchronous set/reset.
//
// Latency: out_valid/out_sum appear 6 cycles after the in_last partial was presented.
module fp32_interleaved_acc (
    input  logic        clk,
    input  logic        rst,          // synchronous; clears the control bits only
    input  logic        in_valid,     // in_partial holds a partial for slot (t mod 6)
    input  logic        in_first,     // start this slot from +0.0 instead of its previous sum
    input  logic        in_last,      // emit this slot's sum when this add completes
    input  logic [31:0] in_partial,   // float32 bits: +0.0 or a normal number; +0.0 when !in_valid
    output logic        out_valid,
    output logic [31:0] out_sum
);
  // Leading zeros of a 28-bit word (28 when it is zero).
  function automatic logic [4:0] lzc28(input logic [27:0] v);
    lzc28 = 5'd28;
    for (int i = 0; i < 28; i++) if (v[i]) lzc28 = 5'(27 - i);
  endfunction

  logic [31:0] acc_q;  // stage 6 result register: the sum of the slot that is back at stage 1

  // ---- stage 1 (swap): order the operands by magnitude ------------------------------------------------
  // Both operands are zero or normal, so comparing the 31-bit magnitude fields as integers orders them.
  logic [31:0] x, y, larger, smaller;
  always_comb begin
    x = in_valid && in_first ? 32'd0 : acc_q;
    y = in_partial;  // +0.0 in cycles without a partial
    if (x[30:0] >= y[30:0]) begin larger = x; smaller = y; end
    else begin larger = y; smaller = x; end
  end

  logic        s1_sign, s1_sub, s1_inf, s1_last;
  logic [7:0]  s1_exp;
  logic [23:0] s1_mlarge, s1_msmaller;  // significands with the hidden bit (0 only for a zero operand)
  logic [4:0]  s1_shift;  // exponent difference, saturated at 27: from there on all of it is sticky
  logic [7:0]  exp_diff;
  always_comb exp_diff = larger[30:23] - smaller[30:23];
  always_ff @(posedge clk) begin
    s1_sign     <= larger[31];
    s1_sub      <= larger[31] ^ smaller[31];
    s1_inf      <= larger[30:23] == 8'hFF;  // an accumulator that overflowed stays Inf
    s1_exp      <= larger[30:23];
    s1_mlarge   <= {larger[30:23] != 0, larger[22:0]};
    s1_msmaller <= {smaller[30:23] != 0, smaller[22:0]};
    s1_shift    <= exp_diff > 8'd27 ? 5'd27 : exp_diff[4:0];
  end

  // ---- stage 2 (align): shift the smaller significand right, keeping guard, round and sticky bits -------
  logic        s2_sign, s2_sub, s2_inf, s2_last;
  logic [7:0]  s2_exp;
  logic [23:0] s2_mlarge;
  logic [26:0] s2_msmaller;  // 24 bits + guard + round + sticky
  logic [50:0] wide;  // the 27-bit window followed by every bit a shift of <= 27 can push out
  always_comb wide = {s1_msmaller, 27'd0} >> s1_shift;
  always_ff @(posedge clk) begin
    s2_msmaller <= {wide[50:25], wide[24] | (wide[23:0] != 0)};
    s2_sign     <= s1_sign;
    s2_sub      <= s1_sub;
    s2_inf      <= s1_inf;
    s2_exp      <= s1_exp;
    s2_mlarge   <= s1_mlarge;
  end

  // ---- stage 3 (add): sum of the aligned significands; |larger| >= |smaller|, so it is never negative ---
  logic        s3_sign, s3_inf, s3_last;
  logic [7:0]  s3_exp;
  logic [27:0] s3_sum;  // bit 27: carry of an addition; the leading 1 of |larger| sits at bit 26
  always_ff @(posedge clk) begin
    // one adder: subtracting is adding the one's complement plus a carry-in of 1
    s3_sum  <= {1'b0, s2_mlarge, 3'd0} + ({1'b0, s2_msmaller} ^ {28{s2_sub}}) + {27'd0, s2_sub};
    s3_sign <= s2_sign;
    s3_inf  <= s2_inf;
    s3_exp  <= s2_exp;
  end

  // ---- stage 4 (count): leading zeros of the sum ------------------------------------------------------
  logic        s4_sign, s4_inf, s4_last, s4_zero;
  logic [7:0]  s4_exp;
  logic [4:0]  s4_lz;
  logic [27:0] s4_sum;
  always_ff @(posedge clk) begin
    s4_lz   <= lzc28(s3_sum);
    s4_zero <= s3_sum == 0;
    s4_sum  <= s3_sum;
    s4_sign <= s3_sign;
    s4_inf  <= s3_inf;
    s4_exp  <= s3_exp;
  end

  // ---- stage 5 (normalize): leading 1 to bit 27; exponent = exp(larger) + 1 - lz ----------------------
  // A zero sum (exact cancellation, or 0 + 0) becomes +0.0: round-to-nearest gives x + (-x) = +0.0.
  logic        s5_sign, s5_inf, s5_last;
  logic [7:0]  s5_exp;
  logic [26:0] s5_norm;  // the bits below the leading 1 (implied): fraction, guard, round, sticky
  logic [8:0]  exp_norm;
  always_comb exp_norm = {1'b0, s4_exp} + 9'd1 - {4'd0, s4_lz};
  always_ff @(posedge clk) begin
    s5_norm <= 27'(s4_sum << s4_lz);
    s5_exp  <= s4_zero ? 8'd0 : exp_norm[7:0];
    s5_sign <= s4_zero ? 1'b0 : s4_sign;
    s5_inf  <= s4_inf | (!s4_zero && exp_norm >= 9'd255);  // a carry out of exponent 254 overflows
  end
`ifndef SYNTHESIS
  // The NPU's operands never produce a subnormal sum (docs/hardware.md); stop if that reasoning breaks.
  always_ff @(posedge clk)
    if (!s4_zero && !s4_inf)
      assert (exp_norm >= 9'd1 && exp_norm < 9'd256) else $error("fp32_interleaved_acc: subnormal sum");
`endif

  // ---- stage 6 (round): to nearest, ties to even; a carry out of the significand bumps the exponent ------
  // Incrementing {exponent, fraction} as one 31-bit integer carries a rounded-up 1.111..1 into the exponent,
  // and 254 into 255 with a zero fraction, which is exactly +-Inf.
  logic [22:0] frac;
  logic        round_up;
  always_comb begin
    frac     = s5_norm[26:4];
    round_up = s5_norm[3] & ((s5_norm[2:0] != 0) | frac[0]);
  end
  always_ff @(posedge clk) begin
    if (s5_inf) acc_q <= {s5_sign, 8'hFF, 23'd0};
    else        acc_q <= {s5_sign, {s5_exp, frac} + {30'd0, round_up}};
  end

  // ---- control: in_last rides along the loop and marks the cycle the slot's final sum is in acc_q --------
  always_ff @(posedge clk) begin
    if (rst) {s1_last, s2_last, s3_last, s4_last, s5_last, out_valid} <= '0;
    else begin
      s1_last   <= in_valid & in_last;
      s2_last   <= s1_last;
      s3_last   <= s2_last;
      s4_last   <= s3_last;
      s5_last   <= s4_last;
      out_valid <= s5_last;
    end
  end
  assign out_sum = acc_q;
endmodule
