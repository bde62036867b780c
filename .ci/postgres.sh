# Sourced by .ci/run: a throwaway PostgreSQL on 127.0.0.1 for the storage tests. Connections
# over TCP need a password (scram-sha-256), as on a real server: the tests pass it in the URL,
# and the password test checks it never leaves the command line.
PG_BIN=/usr/lib/postgresql/15/bin
PG_ROOT=$(mktemp -d /tmp/pcam-pg.XXXXXX)
PG_PASSWORD="ci-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PG_PASSWORD" > "$PG_ROOT/pwfile"
chown -R postgres "$PG_ROOT"
su postgres -c "$PG_BIN/initdb -D $PG_ROOT/data -U postgres --pwfile=$PG_ROOT/pwfile \
  --auth-local=trust --auth-host=scram-sha-256" >/dev/null
rm -f "$PG_ROOT/pwfile"
su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -l $PG_ROOT/log -w start \
  -o '-p 5433 -k $PG_ROOT -c listen_addresses=127.0.0.1'" >/dev/null
trap 'su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -m fast stop" >/dev/null 2>&1 || true' EXIT
export PCAM_TEST_POSTGRES_URL="postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5433/postgres"
# The fault test restarts the server under a running search: stop, a few seconds down, start.
export PCAM_TEST_POSTGRES_RESTART="su postgres -c '$PG_BIN/pg_ctl -D $PG_ROOT/data -m fast -w \
  stop' >/dev/null && sleep 5 && su postgres -c '$PG_BIN/pg_ctl \
  -D $PG_ROOT/data -l $PG_ROOT/log -w start -o \"-p 5433 -k $PG_ROOT -c \
  listen_addresses=127.0.0.1\"' >/dev/null"
