#!/usr/bin/env bash
# Starts or stops one server that run.sh set up, so that kazoo's tests can stop and
# restart it mid-test (kazoo_fixed_servers.py calls this through
# KAZOO_FIXED_STOP_CMD / KAZOO_FIXED_START_CMD).
#   server.sh start DIR   runs DIR/cmd (a bash command line) in the background with
#                         output appended to DIR/server.log, records DIR/pid, and returns
#                         once the server answers `ruok` at DIR/addr ("host port"), or
#                         fails after START_S_MAX seconds or if the process exits.
#   server.sh stop DIR    SIGTERM, then SIGKILL after STOP_S_MAX seconds; waits until gone.
# Every wait is bounded.
set -euo pipefail
START_S_MAX=${START_S_MAX:-60}
STOP_S_MAX=10
action=$1 dir=$2

stop() {
  [[ -f $dir/pid ]] || return 0
  local pid
  pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq $((STOP_S_MAX * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/pid"
}

start() {
  read -r host port <"$dir/addr"
  # exec: the recorded pid is the server's own, so stop() signals the server itself.
  bash -c "exec $(cat "$dir/cmd")" </dev/null >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  python3 - "$dir" "$!" "$host" "$port" "$START_S_MAX" <<'PY'
import os, socket, sys, time
d, pid, host, port, limit = sys.argv[1:]
deadline = time.monotonic() + float(limit)
log = os.path.join(d, "server.log")
def tail():
    with open(log, errors="replace") as f:
        return f.read()[-4000:]
while time.monotonic() < deadline:
    try:
        os.kill(int(pid), 0)
    except OSError:
        sys.exit(f"server in {d} exited during start; log:\n{tail()}")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(b"ruok")
            if s.recv(4) == b"imok":
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)  # poll interval only: the loop ends on the answer or the deadline
sys.exit(f"server in {d} did not answer ruok within {limit} s; log:\n{tail()}")
PY
}

case $action in
  start) start ;;
  stop) stop ;;
  *) echo "usage: server.sh start|stop DIR" >&2; exit 2 ;;
esac
