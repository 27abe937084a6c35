#!/usr/bin/env bash
# Makes sure what the test suite talks to is there: PostgreSQL on 127.0.0.1:5432, Redis on
# 127.0.0.1:6379 and Chromium for the browser tests. Installs with apt-get and starts services
# only when they are missing, so it is quick on a machine that already has them.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! command -v pg_isready >/dev/null 2>&1 && ! pg_isready_path=$(ls /usr/lib/postgresql/*/bin/pg_isready 2>/dev/null | head -1); then
  echo "Installing PostgreSQL…"; apt_install postgresql
fi
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; then
  echo "Starting PostgreSQL…"
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then apt_install postgresql; version=$(ls /etc/postgresql | sort -V | tail -1); fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
fi
pg_isready -h "$PGHOST" -p "$PGPORT" >/dev/null || { echo "PostgreSQL is not reachable on $PGHOST:$PGPORT" >&2; exit 1; }

if ! command -v redis-server >/dev/null 2>&1; then echo "Installing Redis…"; apt_install redis-server; fi
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "Starting Redis…"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }

if [ ! -x /usr/bin/chromium ]; then echo "Installing Chromium…"; apt_install chromium; fi
echo "PostgreSQL, Redis and Chromium are ready."
