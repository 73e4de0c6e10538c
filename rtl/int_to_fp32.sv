// partial = (float)isum * 2^k: the chunk's exact integer sum converted to float32 with round-to-nearest-even
// (C's int-to-float conversion), then scaled by a power of two, which is exact. Both in one rounding step:
// with the leading 1 of |isum| at bit P, the result is +-1.f * 2^(P + k), so the scale only adds k to the
// exponent field, and 2^(P + k) is always a normal float32 (docs/hardware.md: biased exponent in [3, 233]).
//
// W is the width of isum including its sign. |isum| < 2^(W-1), so the significand has W - 1 bits: for
// W - 1 <= 24 (bfp16 and bfp12 sums, |isum| < 2^18) the conversion is exact and the rounding stage is not
// built; for bfp20 (W = 31) sums past 2^24 round to 24 significant bits, ties to even.
//
// Output: +0.0 for a zero sum and for every cycle without in_valid (so it can be added unconditionally).
// Latency: 4 cycles when it rounds (W - 1 > 24), else 3; a new sum every cycle.
module int_to_fp32 #(
    parameter int W = 31
) (
    input  logic               clk,
    input  logic               rst,
    input  logic               in_valid,
    input  logic               in_first,
    input  logic               in_last,
    input  logic signed [W-1:0] in_isum,
    input  logic signed [7:0]  in_k,      // scale exponent E_a + E_w - (M_a - 1) - (M_w - 1)
    output logic               out_valid,
    output logic               out_first,
    output logic               out_last,
    output logic [31:0]        out_partial
);
  localparam int MW = W - 1;             // magnitude bits
  localparam bit ROUNDS = MW > 24;
  localparam int LZW = $clog2(MW + 1);

  function automatic logic [LZW-1:0] lzc(input logic [MW-1:0] v);
    lzc = LZW'(MW);
    for (int i = 0; i < MW; i++) if (v[i]) lzc = LZW'(MW - 1 - i);
  endfunction

  // ---- stage 1 (magnitude): sign and |isum|; exponent of bit MW-1, biased, before normalization ----------
  logic          s1_valid, s1_first, s1_last, s1_sign;
  logic [MW-1:0] s1_mag;
  logic [7:0]    s1_exp;   // k + 127 + (MW - 1), at most 252: the biased exponent if the leading 1 were at MW-1
  always_ff @(posedge clk) begin
    s1_sign <= in_isum[W-1];
    s1_mag  <= MW'((in_isum ^ {W{in_isum[W-1]}}) + W'(in_isum[W-1]));  // |isum|: one's complement + 1
    s1_exp  <= 8'(in_k + 8'sd127 + 8'(MW - 1));
  end

  // ---- stage 2 (count): leading zeros of the magnitude -------------------------------------------------
  logic           s2_valid, s2_first, s2_last, s2_sign, s2_zero;
  logic [MW-1:0]  s2_mag;
  logic [LZW-1:0] s2_lz;
  logic [7:0]     s2_exp;
  always_ff @(posedge clk) begin
    s2_lz   <= lzc(s1_mag);
    s2_zero <= s1_mag == 0;
    s2_mag  <= s1_mag;
    s2_sign <= s1_sign;
    s2_exp  <= s1_exp;
  end

  // ---- stage 3 (normalize): leading 1 to bit MW-1, exponent minus the shift; all zero bits for +0.0 ------
  logic           s3_valid, s3_first, s3_last, s3_sign;
  logic [MW-2:0]  s3_norm;  // the bits below the leading 1, which is implied
  logic [7:0]     s3_exp;
  always_ff @(posedge clk) begin
    if (s2_zero || !s2_valid) begin
      {s3_sign, s3_exp, s3_norm} <= '0;
    end else begin
      s3_norm <= (MW - 1)'(s2_mag << s2_lz);
      s3_exp  <= s2_exp - 8'(s2_lz);
      s3_sign <= s2_sign;
    end
  end

  if (ROUNDS) begin : g_round
    // ---- stage 4 (round): 24 significant bits, to nearest, ties to even; a carry out of 1.111..1 moves
    // into the exponent field because {exponent, fraction} is incremented as one integer.
    // A zero stays zero: no guard bit, no round-up.
    logic [22:0] frac;
    logic        round_up;
    always_comb begin
      frac     = s3_norm[MW-2 -: 23];
      round_up = s3_norm[MW-25] & ((s3_norm[MW-26:0] != 0) | frac[0]);
    end
    always_ff @(posedge clk) out_partial <= {s3_sign, {s3_exp, frac} + {30'd0, round_up}};
  end else begin : g_exact
    assign out_partial = {s3_sign, s3_exp, s3_norm[MW-2:0], (24 - MW)'(0)};
  end

  // ---- control ------------------------------------------------------------------------------------------
  always_ff @(posedge clk) begin
    if (rst) {s1_valid, s2_valid, s3_valid} <= '0;
    else {s1_valid, s2_valid, s3_valid} <= {in_valid, s1_valid, s2_valid};
    {s1_first, s1_last} <= {in_first, in_last};
    {s2_first, s2_last} <= {s1_first, s1_last};
    {s3_first, s3_last} <= {s2_first, s2_last};
  end
  if (ROUNDS) begin : g_round_ctl
    always_ff @(posedge clk) begin
      if (rst) out_valid <= 1'b0;
      else out_valid <= s3_valid;
      {out_first, out_last} <= {s3_first, s3_last};
    end
  end else begin : g_exact_ctl
    assign {out_valid, out_first, out_last} = {s3_valid, s3_first, s3_last};
  end
endmodule
