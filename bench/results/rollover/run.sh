#!/bin/bash
# A/B: zxidCounterMax default vs 1000 (a rollover every 1000 txns), 3-node Zab, set 8x16 and 1x1.
# Usage (repository root, release build, quiet machine): OUT=/tmp/roll bench/results/rollover/run.sh
# then python3 bench/results/rollover/table.py /tmp/roll
mkdir -p "${OUT:-/tmp/roll}"
set -u
CK=${CK:-target/release}
for round in 1 2 3; do
  for max in default 1000; do
    dir=${OUT:-/tmp/roll}/cl-$max
    set_arg=()
    [[ $max != default ]] && set_arg=(--set zxidCounterMax=$max)
    $CK/ckctl cluster up --dir $dir "${set_arg[@]}" >/dev/null 2>&1 || { echo "up failed $max"; exit 1; }
    sleep 2
    conn=127.0.0.41:2181,127.0.0.42:2181,127.0.0.43:2181
    for cell in 8x16 1x1; do
      s=${cell%x*}; i=${cell#*x}
      $CK/ckbench run --connect $conn --workload set --sessions $s --inflight $i --warmup-s 1 --duration-s 4 --format json > ${OUT:-/tmp/roll}/r$round-$max-$cell.json 2>${OUT:-/tmp/roll}/r$round-$max-$cell.err
    done
    rolls=$(python3 -c "
import socket
for ip in ['127.0.0.41','127.0.0.42','127.0.0.43']:
    s=socket.create_connection((ip,2181)); s.sendall(b'mntr'); d=b''
    while True:
        x=s.recv(65536)
        if not x: break
        d+=x
    for l in d.decode().splitlines():
        if l.startswith('ck_epoch_rollovers') or l.startswith('zk_server_state'): print(ip, l)
")
    echo "round $round max $max: $rolls" >> ${OUT:-/tmp/roll}/rolls.txt
    $CK/ckctl cluster down --purge --dir $dir >/dev/null 2>&1
  done
done
