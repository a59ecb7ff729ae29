# Bar chart of bench.sh's medians: images/s per system and thread count, min..max as error bars.
# gnuplot -e "datafile='plot.dat'; outfile='bench.png'; subtitle='...'" scripts/bench_plot.gp
# datafile columns: "label" system_index median min max (written by bench_peers.py report).
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 1100,600 noenhanced font ",10"
set output outfile
set title "Images per second (higher is better)\n".subtitle
set ylabel "images/s"
set yrange [0:*]
set grid ytics
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30 left nomirror
set key off
set rmargin 10
set bmargin 7
set linetype 1 lc rgb "#1b9e77"
set linetype 2 lc rgb "#7570b3"
set linetype 3 lc rgb "#d95f02"
set linetype 4 lc rgb "#e7298a"
set linetype 5 lc rgb "#66a61e"
plot datafile using 0:3:($2 + 1):xtic(1) with boxes lc variable, \
     "" using 0:3:4:5 with yerrorbars lc rgb "black" pt 0, \
     "" using 0:5:(sprintf("%.0f", $3)) with labels offset 0,1
