#!/usr/bin/env bash
# plot_trace.sh TRACE.csv OUT.png: draws a `ringfeed run --trace` file with gnuplot: queue depths
# over time (top) and images/s per stage over time with the consumer's starved share (bottom).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/plot_trace.sh TRACE.csv OUT.png" >&2; exit 2; }
[ -s "$1" ] || { echo "plot_trace.sh: $1 is empty or missing" >&2; exit 1; }
command -v gnuplot >/dev/null || "$(dirname "$0")/deps.sh" gnuplot-nox
gnuplot <<GP
set terminal pngcairo size 1000,700 font ',10' noenhanced
set output '$2'
set datafile separator ','
set key autotitle columnhead outside right
set grid
set multiplot layout 2,1
set title 'queue depths'
set ylabel 'items'
plot '$1' using 1:7 with lines lw 2, '' using 1:8 with lines lw 2, '' using 1:9 with lines lw 2
set title 'throughput per stage'
set xlabel 'seconds since start'
set ylabel 'images/s'
set y2label 'consumer starved'
set y2range [0:1.05]
set y2tics
plot '$1' using 1:10 with lines lw 2, '' using 1:11 with lines lw 2, '' using 1:12 with lines lw 2, \
     '' using 1:17 axes x1y2 with lines dashtype 2 title 'consumer starved (right axis)'
unset multiplot
GP
