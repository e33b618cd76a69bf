# RSS (left axis) and live series (right axis) over time, one curve per
# subject. usage: gnuplot -e "dir='DIR'; peers=1" bench/churn/plot.gp
set terminal pngcairo size 1400,800 font ",11"
set output dir.'/churn.png'
set datafile separator ','
set key top left
set title "Write-only pod churn: steady churn, then a burst drained to every 100th pod, then idle"
set xlabel 'time since the subject started, s'
set ylabel 'RSS, MiB'
set y2label 'live series'
set ytics nomirror
set y2tics
set format y2 '%.0s%c'
set grid
if (peers) {
  plot dir.'/adapter.csv' using 1:($3/1048576) every ::1 with lines lw 2 lc rgb '#1f77b4' title 'metrics-adapter RSS (plain VmRSS)', \
       dir.'/adapter.csv' using 1:9 every ::1 axes x1y2 with lines dt 2 lc rgb '#777777' title 'live series (right axis)', \
       dir.'/syncmap.csv' using 1:($3/1048576) every ::1 with lines lw 2 lc rgb '#d62728' title 'Go sync.Map RSS (after GC + FreeOSMemory)', \
       dir.'/rwmap.csv' using 1:($3/1048576) every ::1 with lines lw 2 lc rgb '#2ca02c' title 'Go map + RWMutex RSS (after GC + FreeOSMemory)'
} else {
  plot dir.'/adapter.csv' using 1:($3/1048576) every ::1 with lines lw 2 lc rgb '#1f77b4' title 'metrics-adapter RSS (plain VmRSS)', \
       dir.'/adapter.csv' using 1:9 every ::1 axes x1y2 with lines dt 2 lc rgb '#777777' title 'live series (right axis)'
}
