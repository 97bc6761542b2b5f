#!/usr/bin/env bash
# Large trees (issue 12): a standalone server holding KEYS znodes of 100 bytes (ckbench
# `set` setup, --no-cleanup): its RSS once loaded; then kill -9 and a restart on the
# same data: seconds from exec to the first `ruok` answered "imok" AND a getData of the
# last key served (so the tree is back), and RSS after the restart.
# usage: run.sh corekeeper|zookeeper [KEYS]    (release build; run from the repo root)
set -euo pipefail
SYS=${1:?corekeeper or zookeeper}; KEYS=${2:-1000000}
T=target/release; HOST=127.0.0.61; PORT=2199
WORK=$(mktemp -d /tmp/bigtree.XXXXXX)
trap 'kill -9 $PID 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf $WORK' EXIT
mkdir -p $WORK/data
cat > $WORK/zoo.cfg <<CFG
tickTime=2000
dataDir=$WORK/data
clientPort=$PORT
clientPortAddress=$HOST
4lw.commands.whitelist=*
maxClientCnxns=0
CFG
JARS="zookeeper zookeeper-jute netty-codec netty-resolver netty-transport-native-unix-common
  netty-transport netty-buffer netty-common netty-handler slf4j-api slf4j-log4j12 log4j-1.2 commons-cli"
CP=""; for j in $JARS; do CP+="/usr/share/java/$j.jar:"; done
start() {
  if [ "$SYS" = corekeeper ]; then
    ${CK:-$T/corekeeper} --config $WORK/zoo.cfg >>$WORK/server.log 2>&1 &
  else
    java -Xmx4g -Dzookeeper.forceSync=yes -Dlog4j.configuration=file:/dev/null -cp "${CP%:}" \
      org.apache.zookeeper.server.ZooKeeperServerMain $WORK/zoo.cfg >>$WORK/server.log 2>&1 &
  fi
  PID=$!
}
rss_mb() { awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$PID/status; }
# The last key ckbench's setup makes: its path scheme, read back with ckctl.
LAST=/ckbench/k$(printf %08d $((KEYS - 1)))
serving() {  # $1: a path that must exist (/ before the load)
  [ "$(printf ruok | timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT; cat >&3; cat <&3" 2>/dev/null)" = imok ] &&
    timeout 5 $T/ckctl -server $HOST:$PORT stat "$1" 2>/dev/null | grep -q mZxid
}
start
until serving /; do sleep 0.05; done
echo "$SYS: loading $KEYS znodes"
S0=$(date +%s.%N)
$T/ckbench run --target $SYS --connect $HOST:$PORT --workload set --keys $KEYS --sessions 8 \
  --inflight 16 --warmup-s 0 --duration-s 1 --no-cleanup >$WORK/load.txt 2>&1
echo "loaded in $(echo "$(date +%s.%N) - $S0" | bc) s; RSS $(rss_mb) MB; data $(du -sm $WORK/data | cut -f1) MB"
sleep 10; echo "RSS 10 s after the load: $(rss_mb) MB"
kill -9 $PID; wait $PID 2>/dev/null || true
S0=$(date +%s.%N); start
until serving $LAST; do sleep 0.01; done
echo "restart to serving: $(echo "$(date +%s.%N) - $S0" | bc) s; RSS $(rss_mb) MB"
sleep 10; echo "RSS 10 s after serving: $(rss_mb) MB"
# Where the restart's time went (corekeeper's recovery log lines).
[ "$SYS" = corekeeper ] && grep -E "wal opened|snapshot loaded|loaded snapshot|recovered" $WORK/server.log | tail -3 | cut -c1-220 || true
