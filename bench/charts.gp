# The charts of bench/run.sh, from the .dat files bench/report.pl writes;
# run in the results directory: gnuplot charts.gp

set terminal pngcairo size 960,540 font "sans,10" noenhanced
set datafile missing "-"
set grid ytics
set key top left
set style fill solid 0.8 border -1

# throughput ratio per contender, median with the min..max of the rounds
set output "throughput.png"
set title "wrk throughput, ratio to bare nginx (median, min..max of the rounds)"
set ylabel "requests/s ÷ ceiling"
set yrange [0:1.15]
set boxwidth 0.6
set xtics rotate by -30
unset key
plot "wrk.dat" using 0:2:xtic(1) with boxes lc rgb "#4477aa", \
     "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0, \
     0.93 with lines dt 2 lc rgb "#cc3311" title "0.93"

# instructions per request, per contender and key state
ir_note = ""
load "charts.inc"
set output "instructions.png"
set title "Instructions per request (callgrind), keep-alive, empty_gif" . ir_note
set ylabel "Ir / request"
set yrange [0:*]
set key top left
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
plot "ir.dat" using 2:xtic(1) title "valid key" lc rgb "#4477aa", \
     "" using 3 title "unknown key" lc rgb "#ee7733", \
     "" using 4 title "missing key" lc rgb "#bbbbbb"

# start-up time against the key count
set output "startup.png"
set title "nginx start-up (exec to first response) against the key count"
set style data linespoints
set logscale x
set xtics norotate
set format x "%.0s%c"
set xlabel "keys"
set ylabel "seconds (log scale)"
set logscale y
set yrange [*:*]
plot "startup.dat" using 1:2 title "apikey" lw 2 pt 7 lc rgb "#4477aa", \
     "" using 1:3 title "map" lw 2 pt 5 lc rgb "#cc3311"

# worker memory against the key count
set output "memory.png"
set title "nginx worker memory after 1,000 requests against the key count"
set ylabel "MB (log scale)"
plot "startup.dat" using 1:4 title "apikey, private" lw 2 pt 7 lc rgb "#4477aa", \
     "" using 1:5 title "map, private" lw 2 pt 5 lc rgb "#cc3311", \
     "" using 1:6 title "apikey, RSS" lw 1 dt 2 pt 6 lc rgb "#4477aa", \
     "" using 1:7 title "map, RSS (shared with the master)" lw 1 dt 2 pt 4 lc rgb "#cc3311"
