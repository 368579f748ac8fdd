#!/bin/sh
# tests/harness/pg.sh - a throwaway PostgreSQL for the tests.
#
#   pg.sh start DIR   initdb in DIR/pg, start on a free port, socket in DIR;
#                     prints shell assignments: MF_TEST_PGHOST=.. MF_TEST_PGPORT=..
#   pg.sh stop DIR    fast shutdown (no error if it is not running)
#
# PostgreSQL refuses to run as root, so it runs as the "postgres" user when
# started by root.  Trust authentication on the socket and loopback only:
# the server listens on 127.0.0.1 and lives as long as the test run.
set -eu
cmd=$1 dir=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pg.sh: PostgreSQL server not installed (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case $cmd in
start)
	mkdir -p "$dir/pg"
	if [ "$(id -u)" = 0 ]; then chmod 755 "$dir"; chown postgres "$dir/pg"; fi
	as_pg "$bindir/initdb -D '$dir/pg/data' -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8" >"$dir/pg/initdb.log" 2>&1 ||
		{ cat "$dir/pg/initdb.log" >&2; exit 1; }
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		if as_pg "$bindir/pg_ctl -D '$dir/pg/data' -l '$dir/pg/log' -w -t 60 \
			-o \"-k '$dir/pg' -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c synchronous_commit=off\" start" >/dev/null 2>&1; then
			echo "MF_TEST_PGHOST=$dir/pg"
			echo "MF_TEST_PGPORT=$port"
			exit 0
		fi
	done
	echo "pg.sh: PostgreSQL did not start; log follows" >&2
	cat "$dir/pg/log" >&2 || true
	exit 1
	;;
stop)
	[ -f "$dir/pg/data/postmaster.pid" ] || exit 0
	as_pg "$bindir/pg_ctl -D '$dir/pg/data' -m fast -w -t 30 stop" >/dev/null 2>&1 || true
	;;
*)
	echo "usage: pg.sh start|stop DIR" >&2
	exit 2
	;;
esac
