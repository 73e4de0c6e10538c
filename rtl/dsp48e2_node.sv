// One DSP48E2 slice in the configuration the PE lane's adder trees use (UltraScale+ UG579):
//
//   P <= M + Z + W,   M = (PREADD ? D + A : A) * B   (27 x 18 signed, registered: MREG = 1)
//                     Z = PCIN (USE_PCIN) or 0       (the dedicated cascade from the slice below)
//                     W = C, RND, 0, or P when `acc` (W_SEL = "C", "RND", "ZERO", "P")
//
// so a slice adds its own product to up to two incoming sums (PCIN and C) and the integer adder tree of a
// chunk costs no fabric LUTs. AREG/BREG/DREG/ADREG are the input pipeline registers inside the slice; the
// lane uses them to skew the inputs of the tree levels. Only PREG = MREG = 1 are supported.
//
// Two bodies with the same cycle behaviour: for synthesis (`SYNTHESIS`, defined by Yosys and Vivado) the
// DSP48E2 primitive itself, so the resource count is that of the real slice; otherwise a behavioural model
// of exactly this configuration, which is what the test benches simulate. `make sim-unisim` simulates the
// primitive branch instead, with Xilinx's unisim DSP48E2 model (not in this repository): the lanes give the
// same bytes and the same latency (docs/hardware.md).
module dsp48e2_node #(
    parameter int AREG = 1,             // 0..2 registers on A (and on D when PREADD: DREG must equal AREG)
    parameter int BREG = 1,             // 0..2 registers on B
    parameter bit PREADD = 0,           // multiply D + A (shared-operand packing) instead of A
    parameter int ADREG = 0,            // 0..1 register after the pre-adder (PREADD only)
    parameter bit USE_PCIN = 0,
    parameter W_SEL = "ZERO",           // "ZERO", "C", "RND" or "P" (accumulate while `acc`)
    parameter logic [47:0] RND = '0
) (
    input  logic               clk,
    input  logic signed [26:0] a,
    input  logic signed [26:0] d,       // PREADD only
    input  logic signed [17:0] b,
    input  logic signed [47:0] c,       // W_SEL "C" only
    input  logic signed [47:0] pcin,    // USE_PCIN only
    input  logic               acc,     // W_SEL "P": add P in the next-but-one P update (OPMODEREG = 1)
    output logic signed [47:0] p,
    output logic signed [47:0] pcout
);
`ifdef SYNTHESIS
  localparam logic [1:0] W_MUX = W_SEL == "C" ? 2'b11 : W_SEL == "RND" ? 2'b10 : 2'b00;
  localparam logic [2:0] Z_MUX = USE_PCIN ? 3'b001 : 3'b000;
  // OPMODE = {W, Z, Y = M, X = M}; for W_SEL "P" the W field switches between P (01) and 0 (00).
  logic [8:0] opmode;
  assign opmode = {W_SEL == "P" ? {1'b0, acc} : W_MUX, Z_MUX, 2'b01, 2'b01};

  DSP48E2 #(
      .AMULTSEL(PREADD ? "AD" : "A"), .PREADDINSEL("A"), .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"),
      .A_INPUT("DIRECT"), .B_INPUT("DIRECT"),
      .AREG(AREG), .ACASCREG(AREG), .BREG(BREG), .BCASCREG(BREG),
      .DREG(PREADD ? AREG : 0), .ADREG(PREADD ? ADREG : 0), .MREG(1), .PREG(1), .CREG(0),
      .OPMODEREG(1), .INMODEREG(0), .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
      .RND(RND)
  ) slice (
      .CLK(clk),
      .A({{3{a[26]}}, a}), .B(b), .C(c), .D(d), .PCIN(pcin),
      // INMODE: B2 and A2 feed the multiplier; with the pre-adder, D enabled and added (D + A).
      .INMODE(PREADD ? 5'b00100 : 5'b00000), .OPMODE(opmode), .ALUMODE(4'b0000),
      .CARRYIN(1'b0), .CARRYINSEL(3'b000), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
      .ACIN(30'd0), .BCIN(18'd0),
      .CEA1(1'b1), .CEA2(1'b1), .CEB1(1'b1), .CEB2(1'b1), .CEC(1'b1), .CED(1'b1), .CEAD(1'b1),
      .CEM(1'b1), .CEP(1'b1), .CECTRL(1'b1), .CEINMODE(1'b1), .CEALUMODE(1'b1), .CECARRYIN(1'b1),
      .RSTA(1'b0), .RSTB(1'b0), .RSTC(1'b0), .RSTD(1'b0), .RSTM(1'b0), .RSTP(1'b0), .RSTCTRL(1'b0),
      .RSTINMODE(1'b0), .RSTALUMODE(1'b0), .RSTALLCARRYIN(1'b0),
      .P(p), .PCOUT(pcout),
      .ACOUT(), .BCOUT(), .CARRYCASCOUT(), .CARRYOUT(), .MULTSIGNOUT(), .OVERFLOW(), .UNDERFLOW(),
      .PATTERNDETECT(), .PATTERNBDETECT(), .XOROUT()
  );
`else
  logic signed [26:0] a_q, d_q, ad, ad_q;
  logic signed [17:0] b_q;
  logic signed [44:0] m;
  logic               acc_q;
  logic signed [47:0] w;

  pipe #(.W(27), .N(AREG)) a_regs (.clk, .rst(1'b0), .d(a), .q(a_q));
  pipe #(.W(18), .N(BREG)) b_regs (.clk, .rst(1'b0), .d(b), .q(b_q));
  pipe #(.W(27), .N(AREG)) d_regs (.clk, .rst(1'b0), .d(d), .q(d_q));
  assign ad = PREADD ? d_q + a_q : a_q;  // the 27-bit pre-adder wraps like the slice's
  pipe #(.W(27), .N(ADREG)) ad_regs (.clk, .rst(1'b0), .d(ad), .q(ad_q));

  always_comb begin
    case (W_SEL)
      "C":     w = c;
      "RND":   w = RND;
      "P":     w = acc_q ? p : 48'sd0;
      default: w = 48'sd0;
    endcase
  end
  always_ff @(posedge clk) begin
    m     <= ad_q * b_q;
    acc_q <= acc;
    p     <= 48'(m) + (USE_PCIN ? pcin : 48'sd0) + w;
  end
  assign pcout = p;
`endif
endmodule
