#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the tests: installs Debian's postgresql when missing,
# initdb with trust auth in a temp dir, starts it on a free port with a socket dir of its own.
#   PG_TEST_URL=$(scripts/pg-test-cluster.sh start)    prints the URL; $PG_TEST_STATE/<port> names its dir
#   scripts/pg-test-cluster.sh stop <url>              stops the cluster behind that URL and removes it
#   scripts/pg-test-cluster.sh pause|resume <url>      stops / starts it again, keeping its data (fault tests)
#   scripts/pg-test-cluster.sh freeze|thaw <url>       SIGSTOP / SIGCONT its postmaster and every backend: a hung server
set -euo pipefail
state=${PG_TEST_STATE:-/tmp/aggregator-pg-test}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
# pg_ctl as the postgres user on the cluster in dir $1; port $2 and the other options apply when it starts.
pg_ctl_on() {
  local dir=$1 port=$2
  shift 2
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -w -D "$dir/data" -l "$dir/log" -m fast \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" "$@" >/dev/null
}
dir_of() { cat "$state/$1"; }
port_of() { sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$1"; }

case "${1:-}" in
  start)
    if [ -z "$(pg_bin)" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq --no-install-recommends postgresql >&2
    fi
    port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
    dir=$(mktemp -d /tmp/aggregator-pg-XXXXXX)
    chown postgres:postgres "$dir"
    runuser -u postgres -- "$(pg_bin)/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
    pg_ctl_on "$dir" "$port" start
    mkdir -p "$state"
    echo "$dir" > "$state/$port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    port=$(port_of "$2")
    dir=$(dir_of "$port")
    bash "$0" thaw "$2" 2>/dev/null || true  # a test that failed while the server was frozen
    pg_ctl_on "$dir" "$port" stop || true
    rm -rf "$dir" "$state/$port"
    ;;
  pause|resume)
    port=$(port_of "$2")
    pg_ctl_on "$(dir_of "$port")" "$port" "$([ "$1" = pause ] && echo stop || echo start)"
    ;;
  freeze|thaw)
    # The postmaster first, so it forks no backend after the list is taken; thawed in the reverse order.
    postmaster=$(head -n 1 "$(dir_of "$(port_of "$2")")/data/postmaster.pid")
    if [ "$1" = freeze ]; then
      kill -STOP "$postmaster"
      kill -STOP $(ps -o pid= --ppid "$postmaster")
    else
      kill -CONT $(ps -o pid= --ppid "$postmaster")
      kill -CONT "$postmaster"
    fi
    ;;
  *)
    echo "usage: $0 start | stop <url> | pause <url> | resume <url> | freeze <url> | thaw <url>" >&2
    exit 2
    ;;
esac
