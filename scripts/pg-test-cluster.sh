#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the tests: installs Debian's postgresql when missing,
# initdb with trust auth in a temp dir, starts it on a free port with a socket dir of its own.
#   PG_TEST_URL=$(scripts/pg-test-cluster.sh start)    prints the URL; the data dir is in $PG_TEST_DIR_FILE
#   scripts/pg-test-cluster.sh stop <url>              stops the cluster behind that URL and removes it
#   scripts/pg-test-cluster.sh pause|resume <url>      stops / starts it again, keeping its data (fault tests)
set -euo pipefail
state=${PG_TEST_STATE:-/tmp/aggregator-pg-test}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

case "${1:-}" in
  start)
    if [ -z "$(pg_bin)" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq --no-install-recommends postgresql >&2
    fi
    bin=$(pg_bin)
    port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
    dir=$(mktemp -d /tmp/aggregator-pg-XXXXXX)
    chown postgres:postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -w -D "$dir/data" -l "$dir/log" \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    mkdir -p "$state"
    echo "$dir" > "$state/$port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    port=$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$2")
    dir=$(cat "$state/$port")
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -w -D "$dir/data" -m fast stop >/dev/null || true
    rm -rf "$dir" "$state/$port"
    ;;
  pause|resume)
    port=$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$2")
    dir=$(cat "$state/$port")
    action=$([ "$1" = pause ] && echo stop || echo start)
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -w -D "$dir/data" -l "$dir/log" -m fast \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" "$action" >/dev/null
    ;;
  *)
    echo "usage: $0 start | stop <url> | pause <url> | resume <url>" >&2
    exit 2
    ;;
esac
