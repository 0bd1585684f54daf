# bench/cpu.sh, sourced by the bench scripts: how loaded the machine was during a run.
#
# cpu_sample prints busy, iowait, steal and total jiffies of all CPUs (/proc/stat);
# cpu_since SAMPLE prints the share of CPU time since that sample that was busy, waiting for the
# disk and stolen by the host (a virtual machine's neighbours): "62% busy, 8% disk wait, 5% stolen".
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8, $6, $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
cpu_since() {
  local b0 w0 s0 t0 b1 w1 s1 t1
  read -r b0 w0 s0 t0 <<<"$1"
  read -r b1 w1 s1 t1 <<<"$(cpu_sample)"
  awk -v b=$((b1 - b0)) -v w=$((w1 - w0)) -v s=$((s1 - s0)) -v t=$((t1 - t0)) 'BEGIN {
    t = (t > 0) ? t : 1; printf "%.0f%% busy, %.0f%% disk wait, %.0f%% stolen", 100 * b / t, 100 * w / t, 100 * s / t }'
}
