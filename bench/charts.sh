#!/usr/bin/env bash
# charts.sh -- the benchmark's two charts, from a run folder of bench/run.sh.
#
#   bench/charts.sh RUN_DIR [COPY_TO]
#
# Writes, in RUN_DIR:
#   bench-throughput.png  throughput of each charted row (throughput.dat:
#                         "row raw_msg/s bushost_msg/s"), grouped bars
#   bench-latency.png     the round-trip CDFs of workload 6 (round 1's
#                         lat-<rate>-<side>-1.cdf: "<us> <fraction>"), raw
#                         against bushost at each offered load, log-scale x
# and copies them into COPY_TO when given. Without gnuplot it says so and
# exits 0: the charts are skipped, the run is not failed.
set -euo pipefail

dir=${1:?usage: charts.sh RUN_DIR [COPY_TO]}
copy_to=${2:-}
say() { echo "charts.sh: $*" >&2; }

if ! command -v gnuplot >/dev/null 2>&1; then
    say "gnuplot not found (Debian: apt-get install gnuplot-nox): charts skipped"
    exit 0
fi
if gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo; then
    term="pngcairo size 1100,550 font 'sans,10'"
else
    term="png size 1100,550"
fi

made=()
if [[ -s $dir/throughput.dat ]]; then
    gnuplot <<GP
set terminal $term noenhanced
set output '$dir/bench-throughput.png'
set title 'bushost against raw rabbitmq-c, throughput by workload (median of the rounds)'
set ylabel 'messages/s'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top right
plot '$dir/throughput.dat' using 2:xtic(1) title 'raw rabbitmq-c', '' using 3 title 'bushost'
GP
    made+=(bench-throughput.png)
fi

plots=()
for f in "$dir"/lat-*-raw-1.cdf "$dir"/lat-*-bushost-1.cdf; do
    [[ -s $f ]] || continue
    base=${f##*/lat-}
    rate=${base%%-*}
    side=${base#*-}
    side=${side%-1.cdf}
    label=$([[ $rate == 0 ]] && echo "one at a time" || echo "$rate/s")
    dash=$([[ $side == raw ]] && echo 2 || echo 1)
    case $rate in 0) color=black ;; 1000) color='#1f77b4' ;; *) color='#d62728' ;; esac
    plots+=("'$f' using 1:2 with lines lw 2 dt $dash lc rgb '$color' title '$side, $label'")
done
if ((${#plots[@]})); then
    joined=$(printf '%s, ' "${plots[@]}")
    gnuplot <<GP
set terminal $term noenhanced
set output '$dir/bench-latency.png'
set title 'command -> result round trip, open loop at each offered load: raw bench_pipeline (dashed) against bushost'
set xlabel 'round trip (us, log scale)'
set ylabel 'fraction of commands'
set logscale x
set yrange [0:1]
set grid xtics ytics mxtics
set key bottom right
plot ${joined%, }
GP
    made+=(bench-latency.png)
fi

((${#made[@]})) || { say "nothing to chart in $dir"; exit 0; }
for f in "${made[@]}"; do say "wrote $dir/$f"; done
if [[ -n $copy_to ]]; then
    mkdir -p "$copy_to"
    for f in "${made[@]}"; do cp "$dir/$f" "$copy_to/"; done
    say "copied to $copy_to"
fi
