#!/bin/bash
# ceph-s3-down.sh DIR [--keep] — stops what ceph-s3-up.sh DIR started, by the PIDs in DIR/run/*.pid (watchdog, then
# gateways, then the OSD, then the monitor), and removes DIR (unless --keep: the logs stay for a post-mortem).
# Only a PID whose command line names DIR is signalled, so a stale pid file never hits another process.
set -u
D=${1:?usage: ceph-s3-down.sh DIR [--keep]}
[ -f "$D/ceph.conf" ] || { echo "ceph-s3-down: not a ceph-s3 dir: $D" >&2; exit 1; }
D=$(cd "$D" && pwd)
ours() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$D"; }
stop() {  # TERM, up to 5 s, then KILL
  local pids=() p f alive
  for f in "$@"; do
    [ -f "$f" ] && p=$(cat "$f") && [ "$p" != "$$" ] && ours "$p" && kill -TERM "$p" 2>/dev/null && pids+=("$p")
  done
  [ ${#pids[@]} = 0 ] && return 0
  for _ in $(seq 1 25); do
    alive=0; for p in "${pids[@]}"; do ours "$p" && alive=1; done
    [ $alive = 0 ] && return 0; sleep 0.2
  done
  for p in "${pids[@]}"; do ours "$p" && echo "ceph-s3-down: SIGKILL $p" >&2 && kill -KILL "$p" 2>/dev/null; done
  return 0
}
stop "$D"/run/watchdog.pid
stop "$D"/run/client.rgw.*.pid
stop "$D"/run/osd.*.pid
stop "$D"/run/mon.*.pid
[ "${2:-}" = --keep ] || rm -rf "$D"
