# Sourced by .ci/run: a throwaway PostgreSQL on 127.0.0.1 for the storage tests.
PG_BIN=/usr/lib/postgresql/15/bin
PG_ROOT=$(mktemp -d /tmp/pcam-pg.XXXXXX)
chown postgres "$PG_ROOT"
su postgres -c "$PG_BIN/initdb -D $PG_ROOT/data -A trust -U postgres" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -l $PG_ROOT/log -w start \
  -o '-p 5433 -k $PG_ROOT -c listen_addresses=127.0.0.1'" >/dev/null
trap 'su postgres -c "$PG_BIN/pg_ctl -D $PG_ROOT/data -m fast stop" >/dev/null 2>&1 || true' EXIT
export PCAM_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:5433/postgres"
