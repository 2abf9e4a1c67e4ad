#!/bin/bash
# Two servers side by side, interleaved hey runs: requests/s, p99 and server CPU per request.
#   scripts/serve_ab.sh OLD_DEVICE_DIR NEW_DEVICE_DIR [ROUNDS]
# e.g. git archive d680da2 device export | tar -x -C /tmp/old && scripts/serve_ab.sh /tmp/old/device ./device 6
# Each round: hey -n 20000 -c 32 posting one short review, first to the old server, then to the new
# one (both `serve --quiet --workers 2` on 127.0.0.1). CPU: utime+stime of the server from
# /proc/PID/stat (10 ms ticks) over the run, per request.
set -euo pipefail
old=$1 new=$2 rounds=${3:-6}
body='{"texts": ["What a wonderful film"]}'
start() { PYTHONPATH=$1 python3 -m edge_lstm_device serve --quiet --workers 2 --port "$2" >/dev/null 2>&1 & echo $!; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
OLD=$(start "$old" 18951); NEW=$(start "$new" 18952)
trap 'kill $OLD $NEW' EXIT
sleep 6
for round in $(seq "$rounds"); do
  for which in old new; do
    port=18951; pid=$OLD; if [ $which = new ]; then port=18952; pid=$NEW; fi
    c0=$(cpu $pid)
    out=$(hey -n 20000 -c 32 -m POST -T application/json -d "$body" "http://127.0.0.1:$port/v1/predict")
    c1=$(cpu $pid)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '/99% in/ {print $3}')
    ok=$(echo "$out" | awk '/\[200\]/ {print $2}')
    echo "$round $which requests/s=$rps p99=${p99}s 200=$ok cpu_us_per_request=$(( (c1 - c0) * 10000 / 20000 ))"
  done
done
