# Build the NPU overlay (npu.bit + npu.hwh) for one board with AMD Vivado, from the HLS IP exported by hls/.
#
#   make -C bitstreams BOARD=kv260            (runs Vitis HLS export first, then this script, then adopts the .hwh)
#   vivado -mode batch -source bitstreams/build_overlay.tcl -tclargs BOARD [JOBS]
#
# Reads bitstreams/BOARD/manifest.json (part, clock, NPU base address, VLNV), builds the block design
#   PS (zynq_ultra_ps_e / processing_system7) --M_AXI_HPM0_FPD / M_AXI_GP0--> npu_run_0/s_axi_control
#   npu_run_0/m_axi_gmem0 (program, status) --> S_AXI_HPC0_FPD / S_AXI_GP0,
#   npu_run_0/m_axi_gmem1..4 (weights, weights_b, arena, arena_b) --> S_AXI_HP0..3 (PS DDR),
#   npu_run_0/ap_clk = pl_clk0 / FCLK_CLK0
# and writes bitstreams/BOARD/npu.bit and npu.hwh (PYNQ loads the pair). The NPU's interrupt is left
# unconnected: the driver polls ap_done.
# Not run in this repository's CI (no AMD tools there).

set script_dir [file dirname [file normalize [info script]]]
set repo_dir [file dirname $script_dir]
if {[llength $argv] < 1} { error "usage: build_overlay.tcl BOARD \[JOBS\]" }
set board [lindex $argv 0]
set jobs [expr {[llength $argv] > 1 ? [lindex $argv 1] : 4}]
set board_dir "$script_dir/$board"

proc json_field {text key} {
    if {![regexp "\"$key\"\\s*:\\s*\"?(\[^\",\}\]+)\"?" $text -> value]} { error "no $key in manifest.json" }
    return [string trim $value]
}
set fh [open "$board_dir/manifest.json" r]; set manifest [read $fh]; close $fh
set part      [json_field $manifest part]
set clock_mhz [json_field $manifest clock_mhz]
set base      [json_field $manifest npu_base_address]
set vlnv      [json_field $manifest kernel_vlnv]
set instance  [json_field $manifest npu_instance]

set ip_zip "$repo_dir/hls/build/vitis/npu_run_ip.zip"
if {![file exists $ip_zip]} {
    error "$ip_zip missing: run `cd hls && vitis_hls -f vitis/run_hls.tcl -tclargs csynth,export $part [expr {1000.0 / $clock_mhz}]`"
}
set ip_repo "$repo_dir/hls/build/vitis/ip_repo"
file delete -force $ip_repo
file mkdir $ip_repo
exec unzip -q -o $ip_zip -d $ip_repo

set proj_dir "$repo_dir/hls/build/vivado/$board"
create_project -force npu_overlay $proj_dir -part $part
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog
create_bd_design npu_overlay

if {[string match "xc7z*" $part]} {
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7 processing_system7_0]
    set_property -dict [list CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz CONFIG.PCW_USE_S_AXI_HP0 1 \
        CONFIG.PCW_USE_S_AXI_HP1 1 CONFIG.PCW_USE_S_AXI_HP2 1 CONFIG.PCW_USE_S_AXI_HP3 1 \
        CONFIG.PCW_USE_S_AXI_GP0 1 CONFIG.PCW_USE_M_AXI_GP0 1] $ps
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1"} $ps
    set master processing_system7_0/M_AXI_GP0
    set hp {S_AXI_GP0 S_AXI_HP0 S_AXI_HP1 S_AXI_HP2 S_AXI_HP3}
    set clk processing_system7_0/FCLK_CLK0
} else {
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ultra_ps_e_0]
    catch {apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps}
    set_property -dict [list CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz \
        CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__USE__M_AXI_GP1 0 CONFIG.PSU__USE__M_AXI_GP2 0 \
        CONFIG.PSU__USE__S_AXI_GP0 1 CONFIG.PSU__USE__S_AXI_GP2 1 CONFIG.PSU__USE__S_AXI_GP3 1 \
        CONFIG.PSU__USE__S_AXI_GP4 1 CONFIG.PSU__USE__S_AXI_GP5 1 \
        CONFIG.PSU__SAXIGP2__DATA_WIDTH 128 CONFIG.PSU__SAXIGP3__DATA_WIDTH 128 \
        CONFIG.PSU__SAXIGP4__DATA_WIDTH 128 CONFIG.PSU__SAXIGP5__DATA_WIDTH 128] $ps
    set master zynq_ultra_ps_e_0/M_AXI_HPM0_FPD
    set hp {S_AXI_HPC0_FPD S_AXI_HP0_FPD S_AXI_HP1_FPD S_AXI_HP2_FPD S_AXI_HP3_FPD}
    set clk zynq_ultra_ps_e_0/pl_clk0
}

create_bd_cell -type ip -vlnv $vlnv $instance
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
    -config [list Master "/$master" Clk_master "/$clk" Clk_slave "/$clk" Clk_xbar "/$clk"] \
    [get_bd_intf_pins $instance/s_axi_control]
foreach i {0 1 2 3 4} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 \
        -config [list Slave "/[get_property NAME $ps]/[lindex $hp $i]" Clk_master "/$clk" Clk_slave "/$clk" \
                 Clk_xbar "/$clk"] [get_bd_intf_pins $instance/m_axi_gmem$i]
}
# The NPU at the address the manifest (and the committed .hwh) promise.
foreach s [get_bd_addr_segs -quiet */SEG_${instance}_Reg] {
    set_property offset $base $s
    set_property range 64K $s
}
assign_bd_address
validate_bd_design
save_bd_design

set bd_file [get_files npu_overlay.bd]
make_wrapper -files $bd_file -top
add_files -norecurse [file join [file dirname $bd_file] hdl npu_overlay_wrapper.v]
set_property top npu_overlay_wrapper [current_fileset]
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { error "implementation failed" }

set run_dir [get_property DIRECTORY [get_runs impl_1]]
file copy -force "$run_dir/npu_overlay_wrapper.bit" "$board_dir/npu.bit"
set hwh [glob -nocomplain "$proj_dir/npu_overlay.gen/sources_1/bd/npu_overlay/hw_handoff/npu_overlay.hwh" \
                           "$proj_dir/npu_overlay.srcs/sources_1/bd/npu_overlay/hw_handoff/npu_overlay.hwh"]
if {[llength $hwh] == 0} { error "no .hwh found under $proj_dir" }
file copy -force [lindex $hwh 0] "$board_dir/npu.hwh"
report_utilization -file "$board_dir/utilization.txt"
report_timing_summary -file "$board_dir/timing.txt"
puts "wrote $board_dir/npu.bit and npu.hwh; now: python -m brainwave.fpga.hwh --adopt $board"
