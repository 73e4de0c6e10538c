// One level of a left barrel shifter: q = d << (s * STEP), zeros shifted in. A shifter of N levels is N of
// these in a row, one per digit of the shift amount (radix 2 or 4 digits).
//
// A module of its own for the sake of the LUT mapping only: Yosys maps each module separately, and one level
// per module maps to one LUT per output bit (a radix-4 level is a 4:1 mux, exactly a LUT6), while the same
// shifter written flat maps to far more (fp32_interleaved_acc's normalization: 81 LUTs in three levels,
// about 120 as one `<<`). The cells are counted like any others (the stat is the hierarchy's). Vivado
// flattens and maps shifters itself, so there the structure may not matter.
module shift_stage #(
    parameter int W = 8,
    parameter int SB = 1,   // bits of the shift digit: 1 (0 or STEP) or 2 (0..3 times STEP)
    parameter int STEP = 1
) (
    input  logic [W-1:0]  d,
    input  logic [SB-1:0] s,
    output logic [W-1:0]  q
);
  always_comb q = d << (32'(s) * STEP);
endmodule
