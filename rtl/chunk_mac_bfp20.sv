// Exact integer sum of one bfp20 chunk: isum = sum over 16 lanes of a[l] * w[l], with activation mantissas
// a in [-2047, 2047] (12-bit lanes) and weight mantissas w in [-32767, 32767] (16-bit lanes), so
// |isum| <= 16 * 2047 * 32767 < 2^30 and it fits 31 bits. Integer addition is exact in any order.
//
// One 12 x 16 product per DSP48E2 (27 x 18 multiplier). The 16 slices form a binary tree: slice i adds
// its own product to the sums of slice 2i+1 (through the dedicated PCIN cascade) and slice 2i+2 (through
// the C port), so the whole adder tree sits in the DSP post-adders and costs no LUTs. A slice at depth k
// must see its operands 4 - k cycles after the deepest slice (slice 15, depth 4); up to two of those
// cycles are the slice's own A/B input registers, the rest are fabric registers (only for depth <= 1).
//
// Latency: isum corresponds to the a/w presented 6 cycles earlier; a new chunk every cycle.
// Drive a/w from registers: slice 15 takes them straight into its multiplier (AREG = BREG = 0).
module chunk_mac_bfp20 (
    input  logic               clk,
    input  logic [16*12-1:0]   a,     // lane l in bits [12l +: 12], two's complement
    input  logic [16*16-1:0]   w,     // lane l in bits [16l +: 16], two's complement
    output logic signed [30:0] isum
);
  localparam int NODES = 16;
  localparam int MAX_DEPTH = 4;

  logic signed [47:0] p[0:NODES-1], pcout[0:NODES-1];

  for (genvar i = 0; i < NODES; i++) begin : g_node
    localparam int DEPTH = $clog2(i + 2) - 1;  // floor(log2(i + 1)): slice 0 is the root
    localparam int SKEW = MAX_DEPTH - DEPTH;   // cycles its operands wait
    localparam int IREG = SKEW > 2 ? 2 : SKEW; // ... inside the slice (AREG = BREG)
    localparam int FREG = SKEW - IREG;         // ... in fabric before it

    logic [11:0] a_l;
    logic [15:0] w_l;
    pipe #(.W(28), .N(FREG)) skew (.clk, .rst(1'b0), .d({a[12*i+:12], w[16*i+:16]}), .q({a_l, w_l}));

    logic signed [47:0] from_pcin, from_c;
    if (2 * i + 1 < NODES) begin : g_pcin
      assign from_pcin = pcout[2*i+1];
    end else begin : g_no_pcin
      assign from_pcin = '0;
    end
    if (2 * i + 2 < NODES) begin : g_c
      assign from_c = p[2*i+2];
    end else begin : g_no_c
      assign from_c = '0;
    end

    dsp48e2_node #(
        .AREG(IREG), .BREG(IREG), .USE_PCIN(2 * i + 1 < NODES), .W_SEL(2 * i + 2 < NODES ? "C" : "ZERO")
    ) slice (
        .clk, .a({{15{a_l[11]}}, a_l}), .d(27'd0), .b({{2{w_l[15]}}, w_l}), .c(from_c), .pcin(from_pcin),
        .acc(1'b0), .p(p[i]), .pcout(pcout[i])
    );
  end

  assign isum = p[0][30:0];
endmodule
