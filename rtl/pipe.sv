// N-cycle delay line (N = 0: a wire). RESET clears it synchronously; leave it off for data, so that
// synthesis can pack long delays into shift-register LUTs (SRL16E), and turn it on for valid/last bits,
// so that no stale control bit leaves the pipeline after a reset.
module pipe #(
    parameter int W = 1,
    parameter int N = 1,
    parameter bit RESET = 0
) (
    /* verilator lint_off UNUSEDSIGNAL */  // unused when N = 0
    input  logic         clk,
    input  logic         rst,
    /* verilator lint_on UNUSEDSIGNAL */
    input  logic [W-1:0] d,
    output logic [W-1:0] q
);
  if (N == 0) begin : g_wire
    assign q = d;
  end else begin : g_regs
    logic [W-1:0] r[0:N-1];
    always_ff @(posedge clk) begin
      if (RESET && rst) begin
        for (int i = 0; i < N; i++) r[i] <= '0;
      end else begin
        r[0] <= d;
        for (int i = 1; i < N; i++) r[i] <= r[i-1];
      end
    end
    assign q = r[N-1];
  end
endmodule
