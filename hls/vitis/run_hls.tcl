# Vitis HLS flow for the Brainwave NPU kernel: C-simulation, synthesis, IP export.
#
#   cd hls && vitis_hls -f vitis/run_hls.tcl -tclargs [STEPS] [PART] [CLOCK_NS] [VECTOR_DIR] [TARGET]
#
#   STEPS       comma list of csim,csynth,cosim,export, or "all" (= csim,csynth,export). Default: all
#   PART        FPGA part. Default: xck26-sfvc784-2LV-c (Kria KV260 / KR260, PYNQ-supported)
#   CLOCK_NS    target clock period in ns. Default: 4 (250 MHz, the v2 K26 configuration; the PYNQ overlays
#               pass their manifest's clock, see bitstreams/Makefile)
#   VECTOR_DIR  test-bench vectors (program.bin, weights.bin, input.f32, expected.f32). Default: tb/vectors/smoke
#   TARGET      engine configuration from src/npu_config.h (kv260, zcu104, pynq-z2, u250, u55c). Default: kv260
#
# The IP's VLNV is read from hls/npu_ip.json (the one place it is written down; the PYNQ driver and the .hwh
# checks read the same file). The exported IP lands in hls/build/vitis/npu_run_ip.zip.

set script_dir [file dirname [file normalize [info script]]]
set hls_dir [file dirname $script_dir]

set steps    [expr {[llength $argv] > 0 ? [lindex $argv 0] : "all"}]
set part     [expr {[llength $argv] > 1 ? [lindex $argv 1] : "xck26-sfvc784-2LV-c"}]
set clock_ns [expr {[llength $argv] > 2 ? [lindex $argv 2] : 4}]
set vec_dir  [expr {[llength $argv] > 3 ? [file normalize [lindex $argv 3]] : "$hls_dir/tb/vectors/smoke"}]
set target   [expr {[llength $argv] > 4 ? [lindex $argv 4] : "kv260"}]
if {$steps eq "all"} { set steps "csim,csynth,export" }
set steps [split $steps ","]

set fh [open "$hls_dir/npu_ip.json" r]
set ip_json [read $fh]
close $fh
if {![regexp {"vlnv"\s*:\s*"([^":]+):([^":]+):([^":]+):([^":]+)"} $ip_json -> ip_vendor ip_library ip_name ip_version]} {
    error "no vlnv in $hls_dir/npu_ip.json"
}

file mkdir "$hls_dir/build/vitis"
cd "$hls_dir/build/vitis"

# No FMA contraction and no reassociation anywhere: float32 sums must follow the spec's order.
# NPU_USE_VITIS_HEADERS: C simulation under Vitis uses AMD's ap_int.h / hls_stream.h, not the g++ stand-in in
# src/hls_compat.h. NPU_TARGET_<NAME> selects the engine configuration (src/npu_config.h, generated).
set target_macro "NPU_TARGET_[string map {- _} [string toupper $target]]"
set cflags "-I$hls_dir/src -std=c++14 -ffp-contract=off -DNPU_USE_VITIS_HEADERS -D$target_macro"

open_project -reset npu_prj
set_top npu_run
add_files "$hls_dir/src/npu_kernel.cpp" -cflags $cflags
add_files "$hls_dir/src/npu_kernel.h"
add_files "$hls_dir/src/npu_isa.h"
add_files "$hls_dir/src/npu_format.h"
add_files "$hls_dir/src/npu_config.h"
add_files "$hls_dir/src/hls_compat.h"
add_files -tb "$hls_dir/tb/tb_npu.cpp" -cflags $cflags

open_solution -reset sol1 -flow_target vivado
set_part $part
create_clock -period $clock_ns -name default
config_interface -m_axi_addr64=true
# Keep the float adders exactly as written (no unsafe math / balancing of the accumulation chains).
config_compile -unsafe_math_optimizations=0
# The DSP48E2s all go to the MAC cascades: float32 adders in fabric (the kernel also says so with BIND_OP).
config_op fadd -impl fabric
# Dataflow FIFOs between the CONV2D processes keep their declared depths (hls::stream<T, DEPTH>).
config_dataflow -default_channel fifo

set tb_args "$vec_dir/program.bin $vec_dir/weights.bin $vec_dir/input.f32 $vec_dir/expected.f32 csim_output.f32"

if {"csim" in $steps} {
    csim_design -O -argv $tb_args
}
if {"csynth" in $steps || "cosim" in $steps || "export" in $steps} {
    csynth_design
}
if {"cosim" in $steps} {
    cosim_design -argv $tb_args
}
if {"export" in $steps} {
    export_design -rtl verilog -format ip_catalog \
        -vendor $ip_vendor -library $ip_library -ipname $ip_name -version $ip_version \
        -display_name "Brainwave NPU" \
        -description "Brainwave-style block-floating-point NPU: runs a program from external memory" \
        -output "$hls_dir/build/vitis/npu_run_ip.zip"
}
exit
