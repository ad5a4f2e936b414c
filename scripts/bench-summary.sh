#!/bin/sh
# The figures every benchmark recorded in this `make bench`, as one table.
figures=${1:-target/bench-data/figures.tsv}
[ -f "$figures" ] || { echo "no figures in $figures" >&2; exit 1; }
echo
echo "Summary"
awk -F '\t' '
    { rows[NR] = $0; if (length($1) > w1) w1 = length($1); if (length($2) > w2) w2 = length($2); if (length($3) > w3) w3 = length($3) }
    END {
        printf "%-" w1 "s  %-" w2 "s  %-" w3 "s  %s\n", "figure", "now", "goal", ""
        for (i = 1; i <= NR; i++) { split(rows[i], f, "\t"); printf "%-" w1 "s  %-" w2 "s  %-" w3 "s  %s\n", f[1], f[2], f[3], f[4] }
    }' "$figures"
