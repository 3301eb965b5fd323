#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for procsync::pg's tests, examples and benchmarks.
#
#   scripts/pg-cluster.sh start DIR   initdb into DIR/data and start a server listening
#                                     on a Unix socket in DIR and on 127.0.0.1 at a free
#                                     port; prints shell exports (eval them):
#                                       PROCSYNC_PG_CONNINFO       (Unix socket)
#                                       PROCSYNC_PG_TCP_CONNINFO   (TCP loopback)
#                                       PROCSYNC_PG_CLUSTER        (DIR, for the commands below)
#   scripts/pg-cluster.sh kill DIR    pg_ctl stop -m immediate (a crash, for fault tests)
#   scripts/pg-cluster.sh resume DIR  start the stopped server again, same port and socket
#   scripts/pg-cluster.sh stop DIR    stop the server and remove DIR (safe to call twice)
#
# initdb refuses to run as root, so as root the server runs as the `postgres`
# account the Debian package creates (or a system user `procsync-pg` made
# here if that is missing). Authentication is `trust`, on the private socket
# directory and 127.0.0.1 only: the cluster lives as long as one test run.
set -euo pipefail
cmd=${1:?usage: pg-cluster.sh start|kill|resume|stop DIR}
dir=${2:?usage: pg-cluster.sh start|kill|resume|stop DIR}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg-cluster.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

as_owner() {  # runs a command as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$(cat "$dir/owner")" -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  owner=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    if ! id -u postgres >/dev/null 2>&1; then
      owner=procsync-pg
      id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
    fi
    chown "$owner" "$dir"
  fi
  echo "$owner" >"$dir/owner"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" >"$dir/port"
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
synchronous_commit = off
deadlock_timeout = 100ms
CONF
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "export PROCSYNC_PG_CONNINFO='host=$dir port=$port dbname=postgres user=postgres'"
  echo "export PROCSYNC_PG_TCP_CONNINFO='host=127.0.0.1 port=$port dbname=postgres user=postgres'"
  echo "export PROCSYNC_PG_CLUSTER='$dir'"
  ;;
kill)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
resume)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  ;;
stop)
  [ -d "$dir" ] || exit 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: pg-cluster.sh start|kill|resume|stop DIR" >&2
  exit 2
  ;;
esac
