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
  // Leading zeros of a 16-bit and of a 12-bit word (16 and 12 when it is zero).
  function automatic logic [4:0] lzc16(input logic [15:0] v);
    lzc16 = 5'd16;
    for (int i = 0; i < 16; i++) if (v[i]) lzc16 = 5'(15 - i);
  endfunction
  function automatic logic [3:0] lzc12(input logic [11:0] v);
    lzc12 = 4'd12;
    for (int i = 0; i < 12; i++) if (v[i]) lzc12 = 4'(11 - i);
  endfunction

  logic [31:0] acc_q;  // stage 6 result register: the sum of the slot that is back at stage 1

  // ---- stage 1 (swap): order the operands by magnitude ------------------------------------------------
  // Both operands are zero or normal, so comparing the 31-bit magnitude fields as integers orders them.
  // The first operand x is +0.0 when the slot restarts (in_first); rather than clearing all of acc_q before
  // the comparison, a restart makes y (the partial) the larger operand, which is right whatever y is, and
  // clears x's fields only where they are used as the smaller operand.
  logic        restart, x_larger;
  logic [7:0]  exp_x, exp_y, exp_larger, exp_smaller, exp_diff;
  logic [23:0] m_x, m_y;  // significands with the hidden bit (0 only for a zero operand)
  always_comb begin
    restart     = in_valid && in_first;
    x_larger    = !restart && acc_q[30:0] >= in_partial[30:0];
    exp_x       = acc_q[30:23];
    exp_y       = in_partial[30:23];  // +0.0 in cycles without a partial
    m_x         = {exp_x != 0, acc_q[22:0]};
    m_y         = {exp_y != 0, in_partial[22:0]};
    exp_larger  = x_larger ? exp_x : exp_y;
    exp_smaller = x_larger ? exp_y : restart ? 8'd0 : exp_x;
    exp_diff    = exp_larger - exp_smaller;
  end

  logic        s1_sign, s1_sub, s1_inf, s1_last;
  logic [7:0]  s1_exp;
  logic [23:0] s1_mlarge, s1_msmaller;
  logic [4:0]  s1_shift;  // exponent difference, saturated at 27: from there on all of it is sticky
  always_ff @(posedge clk) begin
    s1_sign     <= x_larger ? acc_q[31] : in_partial[31];
    s1_sub      <= (acc_q[31] && !restart) ^ in_partial[31];
    s1_inf      <= exp_larger == 8'hFF;  // an accumulator that overflowed stays Inf
    s1_exp      <= exp_larger;
    s1_mlarge   <= x_larger ? m_x : m_y;
    s1_msmaller <= x_larger ? m_y : restart ? 24'd0 : m_x;
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
  logic [26:0] s4_sum;  // bit 27 of the sum is only ever the leading 1 itself
  // Leading zeros of the 28-bit sum (28 when it is zero): those of its top 16 bits, and when these are all
  // zero, 16 plus those of its low 12 bits.
  logic [4:0]  lz_hi;
  logic [3:0]  lz_lo;
  always_comb begin
    lz_hi = lzc16(s3_sum[27:12]);
    lz_lo = lzc12(s3_sum[11:0]);
  end
  always_ff @(posedge clk) begin
    s4_lz   <= lz_hi[4] ? {1'b1, lz_lo} : lz_hi;
    s4_zero <= s3_sum == 0;
    s4_sum  <= s3_sum[26:0];
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
  // sum << lz in three levels (16, 4 * lz[3:2], lz[1:0]), each a module of its own (shift_stage.sv).
  logic [26:0] norm16, norm4;
  logic [26:0] norm;
  shift_stage #(.W(27), .SB(1), .STEP(16)) norm_by_16 (.d(s4_sum), .s(s4_lz[4]), .q(norm16));
  shift_stage #(.W(27), .SB(2), .STEP(4)) norm_by_4 (.d(norm16), .s(s4_lz[3:2]), .q(norm4));
  shift_stage #(.W(27), .SB(2), .STEP(1)) norm_by_1 (.d(norm4), .s(s4_lz[1:0]), .q(norm));
  always_ff @(posedge clk) begin
    s5_norm <= norm;
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
