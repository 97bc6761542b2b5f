#!/usr/bin/env bash
# $1 = cluster dir, $2 = label. A follower misses > commitLogCount txns, then returns
# (SNAP of ~1M znodes) while the leader takes 2000 writes/s (open loop).
set -u
T=/work/main/target/release; DIR=$1; L=$2
ADDRS=127.0.0.41:2181,127.0.0.42:2181,127.0.0.43:2181
LEADER=$($T/ckctl cluster status --dir $DIR | awk '$3=="leader"{print $2}')
F=$($T/ckctl cluster status --dir $DIR | awk '$3=="follower"{print $1}' | head -1)
echo "leader $LEADER, follower $F"
$T/ckctl cluster kill $F --dir $DIR >/dev/null
$T/ckbench run --target corekeeper --connect $LEADER --workload set --keys 1000 --sessions 4 --inflight 8 --warmup-s 0 --duration-s 1 --seed 2 >/dev/null 2>&1
$T/ckbench run --target corekeeper --connect $LEADER --workload set --keys 1000 --sessions 4 --rate 2000 --warmup-s 2 --duration-s 16 --seed 3 --label $L --out /tmp/snapexp-$L-lat > /tmp/snapexp-$L-lat.txt 2>&1 &
B=$!
sleep 6
date +%T.%N
$T/ckctl cluster restart $F --dir $DIR
date +%T.%N
wait $B
grep -E "p50|p99|max|ops/s" /tmp/snapexp-$L-lat.txt | head -8
grep -h "snapshot" $DIR/*/*.log $DIR/*.log 2>/dev/null | tail -5
