# The chart of bench/soak.pl: worker RSS, database size and request rate
# over the run, from soak.tsv; the warm-up shaded.
#
#   gnuplot -e "dat='soak.tsv'; out='soak.png'; warmup=60; workers=2; \
#               duration=600" bench/soak.gp

set terminal pngcairo size 960,900 font "sans,10" noenhanced
set output out
set datafile commentschars "#"
set datafile missing "-"
set lmargin 10
set rmargin 3
set grid xtics ytics
set key top left horizontal
set offsets graph 0, graph 0, graph 0.3, graph 0
set xrange [0:duration]
set yrange [0:*]
set object 1 rect from 0, graph 0 to warmup, graph 1 \
    fc rgb "#eeeeee" fs solid 1.0 noborder behind

set multiplot layout 3,1 title "make soak: " . sprintf("%.0f s", duration) \
    . ", warm-up shaded"

set title "nginx workers: RSS (VmRSS) and its anonymous part"
set ylabel "MB"
set format x ""
plot dat using 1:3 with lines lw 2 lc rgb "#4477aa" title "RSS, sum", \
     dat using 1:4 with lines lw 1 dt 2 lc rgb "#4477aa" \
         title "anonymous, sum", \
     for [w=1:workers] dat using 1:(column(10 + w)) with lines lw 1 \
         title sprintf("worker %d", w)

set title "database: data.mdb, map used (apikeyctl stats), " \
    . "pages in use (mdb_stat)"
set ylabel "MB"
plot dat using 1:5 with lines lw 3 lc rgb "#cc3311" title "data.mdb", \
     dat using 1:6 with lines lw 1 dt 2 lc rgb "black" title "map used", \
     dat using 1:9 with lines lw 1 lc rgb "#ee7733" \
         title "in use (free pages left out)"

set title "requests answered to the load's clients"
set ylabel "requests/s"
set xlabel "seconds"
set format x "%g"
plot dat using 1:2 with lines lw 1 lc rgb "#228833" title "requests/s"

unset multiplot
