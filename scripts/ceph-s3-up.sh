#!/bin/bash
# ceph-s3-up.sh DIR — a throw-away one-node Ceph cluster with an S3 gateway, for tests and for trying the S3 inbox:
# one monitor, one OSD on memstore (RAM; nothing touches a disk but DIR), one radosgw per port, all on 127.0.0.1,
# all state (config, keyrings, pid files, sockets, logs) in DIR, which must be empty or absent. No systemd, no root.
# Needs Debian's ceph-mon ceph-osd radosgw ceph-common (Ceph 16). ~2 s to a working endpoint, ~110 MiB idle.
#
# The caller chooses the ports (free ones: parallel clusters must never share one):
#   CEPH_S3_MON_PORT=<port>  CEPH_S3_RGW_PORTS="<port> [<port>]"   (required)
#   CEPH_S3_OWNER_PID=<pid>  optional: stop the cluster (ceph-s3-down.sh DIR) when that process is gone, so a test
#                            runner that dies without cleaning up leaves nothing running
#   CEPH_S3_MEMSTORE_BYTES   optional: the OSD's RAM budget (default 4 GiB; memstore allocates only what is stored)
# Writes DIR/s3.env (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, S3_ENDPOINT, S3_ENDPOINTS, CEPH_CONF;
# the keys are random per cluster) and prints DIR on its last line. Stop with scripts/ceph-s3-down.sh DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
D=${1:?usage: ceph-s3-up.sh DIR   (with CEPH_S3_MON_PORT and CEPH_S3_RGW_PORTS set)}
MON_PORT=${CEPH_S3_MON_PORT:?set CEPH_S3_MON_PORT to a free port}
RGW_PORTS=${CEPH_S3_RGW_PORTS:?set CEPH_S3_RGW_PORTS to one or two free ports}
MEMSTORE_BYTES=${CEPH_S3_MEMSTORE_BYTES:-4294967296}
for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
  command -v "$tool" >/dev/null || { echo "ceph-s3-up: $tool not found (apt-get install ceph-mon ceph-osd radosgw ceph-common)" >&2; exit 3; }
done
for P in $MON_PORT $RGW_PORTS; do  # a busy port would fool the readiness checks below
  if (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null; then echo "ceph-s3-up: port $P already in use" >&2; exit 1; fi
done
mkdir -p "$D"
[ -z "$(ls -A "$D")" ] || { echo "ceph-s3-up: $D is not empty" >&2; exit 1; }
D=$(cd "$D" && pwd)
export CEPH_CONF=$D/ceph.conf
mkdir -p "$D"/{run,log,crash,mon.a,osd.0}
trap 'rc=$?; [ $rc = 0 ] || { echo "ceph-s3-up failed ($rc); last log lines:" >&2; tail -n 15 "$D"/log/*.log >&2 2>/dev/null
      "$HERE/ceph-s3-down.sh" "$D" --keep; }' EXIT
log() { echo "[ceph-s3 $(date +%T.%N | cut -c1-12)] $*" >&2; }
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
FSID=$(cat /proc/sys/kernel/random/uuid)
AK=FT$(random_hex 9 | tr a-f A-F)            # 20 characters, like AWS access key ids
SK=$(random_hex 20)

# Why these settings: one OSD holds every copy (size 1, no redundancy warnings); few placement groups and threads
# keep it light; every path points into DIR; both addresses are loopback, so nothing listens beyond this machine.
cat > "$CEPH_CONF" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
keyring = $D/\$name.keyring
crash dir = $D/crash
auth allow insecure global id reclaim = false
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
[mon]
mon data = $D/mon.\$id
keyring = $D/mon.\$id/keyring
mon data avail crit = 0
mon data avail warn = 1
mon cluster log file = $D/log/cluster.log
paxos propose interval = 0.1
[osd]
osd data = $D/osd.\$id
keyring = $D/osd.\$id/keyring
osd objectstore = memstore
osd crush initial weight = 1
osd op num shards = 2
osd op num threads per shard = 1
memstore device bytes = $MEMSTORE_BYTES
osd memory target = 1073741824
osd max object name len = 256
osd max object namespace len = 64
[client]
rgw thread pool size = 64
rgw gc obj min wait = 30
rgw gc processor period = 30
CONF

if [ -n "${CEPH_S3_OWNER_PID:-}" ]; then
  # A watchdog in its own session: when the owner is gone, stop the cluster. ceph-s3-down.sh stops it first.
  setsid bash -c 'echo $$ > "$1/run/watchdog.pid"; while kill -0 "$2" 2>/dev/null; do sleep 1; done
                  exec "$3/ceph-s3-down.sh" "$1"' ceph-s3-watchdog "$D" "$CEPH_S3_OWNER_PID" "$HERE" \
    </dev/null >>"$D/log/watchdog.log" 2>&1 &
fi

log "mon: keyrings, monmap, mkfs"
{ ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *'
  ceph-authtool --create-keyring "$D/client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
  ceph-authtool "$D/mon.keyring" --import-keyring "$D/client.admin.keyring"
  monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap"; } >"$D/log/setup.log"
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring"
ceph-mon -c "$CEPH_CONF" -i a                   # daemonizes; pid in $D/run/mon.a.pid
timeout 60 sh -c 'until ceph --connect-timeout 3 -s >/dev/null 2>&1; do sleep 0.2; done'
log "mon up on 127.0.0.1:$MON_PORT"

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_KEY=$(ceph-authtool --gen-print-key)
echo "{\"cephx_secret\": \"$OSD_KEY\"}" > "$D/osd.0.json"
OSD_ID=$(ceph osd new "$OSD_UUID" -i "$D/osd.0.json")
ceph-authtool --create-keyring "$D/osd.$OSD_ID/keyring" -n "osd.$OSD_ID" --add-key "$OSD_KEY" >/dev/null
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.log" 2>&1
ceph-osd -c "$CEPH_CONF" -i "$OSD_ID" 2>>"$D/log/osd-start.log"   # pid in $D/run/osd.0.pid
timeout 60 sh -c 'until ceph osd stat 2>/dev/null | grep -q "1 up"; do sleep 0.2; done'
log "osd.$OSD_ID up (memstore)"

http_ok() {  # an anonymous GET / answers 200 once the gateway serves (bash's /dev/tcp: no curl needed)
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&-
  [[ $reply == HTTP/1.?\ 200* ]]
}
ENDPOINTS=()
for P in $RGW_PORTS; do
  N=client.rgw.p$P
  ceph auth get-or-create "$N" mon 'allow rw' osd 'allow rwx' -o "$D/$N.keyring"
  mkdir -p "$D/rgw.$P"
  radosgw -c "$CEPH_CONF" -n "$N" --rgw-data "$D/rgw.$P" --rgw-frontends "beast endpoint=127.0.0.1:$P"
  for _ in $(seq 1 600); do http_ok "$P" 2>/dev/null && break; sleep 0.2; done
  http_ok "$P" 2>/dev/null || { echo "ceph-s3-up: radosgw on port $P did not answer" >&2; exit 1; }
  log "rgw up on 127.0.0.1:$P"
  ENDPOINTS+=("http://127.0.0.1:$P")
done

radosgw-admin user create --uid=ft-test --display-name="ft test user" --access-key="$AK" --secret-key="$SK" >"$D/user.json"
cat > "$D/s3.env" <<ENV
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_REGION=us-east-1
export S3_ENDPOINT=${ENDPOINTS[0]}
export S3_ENDPOINTS="${ENDPOINTS[*]}"
export CEPH_CONF=$CEPH_CONF
ENV
log "ready: source $D/s3.env"
echo "$D"
