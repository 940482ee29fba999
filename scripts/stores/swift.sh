#!/usr/bin/env bash
# A throw-away one-replica OpenStack Swift on 127.0.0.1 for tests and local use:
# tempauth accounts, the s3api middleware (so the S3 API is served by the same
# cluster), storage in a plain directory, every daemon a background process
# with a PID file in the state directory.
#
#   scripts/stores/swift.sh install   apt-get the Swift packages if missing (as root)
#   scripts/stores/swift.sh start     configure and start (no-op when running); prints env
#   scripts/stores/swift.sh stop      stop exactly the processes `start` started
#   scripts/stores/swift.sh status    exit 0 when running
#   scripts/stores/swift.sh env       print `export NBDTS_SWIFT_...` lines for eval
#   scripts/stores/swift.sh stop-proxy   stop only the proxy (fault tests: Swift "goes away")
#   scripts/stores/swift.sh start-proxy  start it again and wait for auth (no-op when it answers)
#
# Settings (environment):
#   NBDTS_SWIFT_DIR   state directory (default /tmp/nbdts-swift)
#   NBDTS_SWIFT_PORT  proxy port (default 8080; the account, container and object
#                     servers and memcached use the next four ports)
#
# Accounts (tempauth): test:tester / testing (admin of AUTH_test) and
# test2:tester2 / testing2 (admin of AUTH_test2). For S3 the access key is
# `test:tester` and the secret `testing`.
#
# Swift reads its hash prefix/suffix from /etc/swift/swift.conf at import; the
# daemons here run through a small launcher that points Swift at the state
# directory's swift.conf instead, so /etc/swift is neither needed nor touched.
set -euo pipefail

STATE=${NBDTS_SWIFT_DIR:-/tmp/nbdts-swift}
PORT=${NBDTS_SWIFT_PORT:-8080}
HOST=127.0.0.1
PY=/usr/bin/python3   # Debian's python3-swift lives here, not in pyenv/venv pythons
USER1=test:tester KEY1=testing
USER2=test2:tester2 KEY2=testing2
DAEMONS=(memcached account container object proxy)

ETC=$STATE/etc RUN=$STATE/run LOG=$STATE/log SRV=$STATE/srv

die() { echo "swift.sh: $*" >&2; exit 1; }

port_of() {
  case $1 in
    proxy) echo "$PORT" ;;
    account) echo $((PORT + 1)) ;;
    container) echo $((PORT + 2)) ;;
    object) echo $((PORT + 3)) ;;
    memcached) echo $((PORT + 4)) ;;
  esac
}

auth_url() { echo "http://$HOST:$PORT/auth/v1.0"; }

print_env() {
  cat <<EOF
export NBDTS_SWIFT_AUTH_URL=$(auth_url) NBDTS_SWIFT_USER=$USER1 NBDTS_SWIFT_KEY=$KEY1 NBDTS_SWIFT_USER2=$USER2 NBDTS_SWIFT_KEY2=$KEY2 NBDTS_S3_ENDPOINT=http://$HOST:$PORT NBDTS_S3_ACCESS_KEY=$USER1 NBDTS_S3_SECRET_KEY=$KEY1
EOF
}

# A PID file names a live process we started (checked against its command line,
# so a recycled PID is never mistaken for ours).
alive() {
  local pidfile=$RUN/$1.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$STATE"
}

answering() {
  curl -fsS -o /dev/null --max-time 2 -H "X-Auth-User: $USER1" -H "X-Auth-Key: $KEY1" "$(auth_url)" 2>/dev/null
}

# The proxy answers auth by itself (tempauth) while the account, container and
# object servers may still be importing: only a real write proves the cluster
# serves. One container PUT, object PUT and DELETE, retried until they succeed.
serving() {
  local headers url token
  headers=$(curl -fsS -D - -o /dev/null --max-time 5 -H "X-Auth-User: $USER1" -H "X-Auth-Key: $KEY1" "$(auth_url)" 2>/dev/null) || return 1
  url=$(tr -d '\r' <<<"$headers" | sed -n 's/^[Xx]-[Ss]torage-[Uu]rl: //p')
  token=$(tr -d '\r' <<<"$headers" | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
  [[ -n $url && -n $token ]] || return 1
  curl -fsS -o /dev/null --max-time 10 -X PUT -H "X-Auth-Token: $token" "$url/nbdts-warmup" 2>/dev/null &&
    curl -fsS -o /dev/null --max-time 10 -X PUT -H "X-Auth-Token: $token" --data-binary warm "$url/nbdts-warmup/probe" 2>/dev/null &&
    curl -fsS -o /dev/null --max-time 10 -X DELETE -H "X-Auth-Token: $token" "$url/nbdts-warmup/probe" 2>/dev/null
}

running() {
  local d
  for d in "${DAEMONS[@]}"; do alive "$d" || return 1; done
  answering
}

cmd_install() {
  local pkgs=(swift swift-proxy swift-object swift-container swift-account memcached python3-swiftclient curl)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then echo "swift.sh: packages already installed"; return; fi
  [[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root: run 'sudo $0 install'"
  # Debian's postinst scripts try to start services; keep them from doing so.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

write_configs() {
  mkdir -p "$ETC" "$RUN" "$LOG" "$SRV/d1" "$STATE/bin"

  # The hash prefix/suffix decide where objects live on disk: keep them once made.
  if [[ ! -f $ETC/swift.conf ]]; then
    cat >"$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = nbdts-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
swift_hash_path_suffix = nbdts-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

[storage-policy:0]
name = Policy-0
default = yes
EOF
  fi

  # The launcher: Swift's own server entry point, after pointing it at our swift.conf.
  cat >"$STATE/bin/swiftd.py" <<'EOF'
import sys
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common import storage_policy
storage_policy.reload_storage_policies()
from swift.common.wsgi import run_wsgi
kind, conf = sys.argv[2], sys.argv[3]
extra = {}
if kind == 'object':
    from swift.obj import server
    extra['global_conf_callback'] = server.global_conf_callback
sys.exit(run_wsgi(conf, kind + '-server', verbose=True, **extra))
EOF

  local common="[DEFAULT]
bind_ip = $HOST
user = $(id -un)
swift_dir = $ETC
devices = $SRV
mount_check = false
workers = 0
log_level = WARNING
"
  printf '%sbind_port = %s\n\n[pipeline:main]\npipeline = account-server\n\n[app:account-server]\nuse = egg:swift#account\n' \
    "$common" "$(port_of account)" >"$ETC/account-server.conf"
  printf '%sbind_port = %s\n\n[pipeline:main]\npipeline = container-server\n\n[app:container-server]\nuse = egg:swift#container\n' \
    "$common" "$(port_of container)" >"$ETC/container-server.conf"
  printf '%sbind_port = %s\n\n[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\n' \
    "$common" "$(port_of object)" >"$ETC/object-server.conf"

  cat >"$ETC/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = $HOST
bind_port = $PORT
user = $(id -un)
swift_dir = $ETC
workers = 0
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# One replica on one disk: do not wait for handoffs that cannot exist.
node_timeout = 10
conn_timeout = 2

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $KEY1 .admin
user_test2_tester2 = $KEY2 .admin
token_life = 86400

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
dns_compliant_bucket_names = false

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = $HOST:$(port_of memcached)

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
EOF
}

# One device, one replica. Rebuilt on every start (cheap) so a changed port
# takes effect; with a single device every partition maps to it, so data stays put.
build_rings() {
  local ring
  for ring in account container object; do
    rm -f "$ETC/$ring.builder" "$ETC/$ring.ring.gz"
    swift-ring-builder "$ETC/$ring.builder" create 8 1 0 >/dev/null
    swift-ring-builder "$ETC/$ring.builder" add "r1z1-$HOST:$(port_of "$ring")/d1" 100 >/dev/null
    # Exit status 1 is "warning" (e.g. balance), still a usable ring.
    swift-ring-builder "$ETC/$ring.builder" rebalance >/dev/null || [[ $? == 1 ]] || die "building the $ring ring failed"
    [[ -f $ETC/$ring.ring.gz ]] || die "building the $ring ring failed"
  done
}

launch() {
  local name=$1; shift
  # setsid: the daemons outlive the shell (and test runner) that started them.
  setsid "$@" </dev/null >>"$LOG/$name.log" 2>&1 9>&- &
  echo $! >"$RUN/$name.pid"
}

port_busy() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

cmd_start() {
  command -v swift-ring-builder >/dev/null && [[ -x /usr/bin/swift-proxy-server ]] && command -v memcached >/dev/null \
    || die "Swift is not installed: run '$0 install' as root"
  if running; then print_env; return; fi
  # Half-started or crashed: clean up our own leftovers first.
  cmd_stop >/dev/null
  local d
  for d in "${DAEMONS[@]}"; do
    port_busy "$(port_of "$d")" && die "port $(port_of "$d") ($d) is in use: set NBDTS_SWIFT_PORT to a free base port (5 ports are used)"
  done

  write_configs
  build_rings

  launch memcached memcached -u "$(id -un)" -l "$HOST" -p "$(port_of memcached)" -U 0 -m 64 -c 1024 -P "$RUN/memcached.own-pid"
  for d in account container object proxy; do
    launch "$d" "$PY" "$STATE/bin/swiftd.py" "$ETC" "$d" "$ETC/$d-server.conf"
  done

  local i
  for ((i = 0; i < 150; i++)); do
    if answering; then break; fi
    for d in "${DAEMONS[@]}"; do
      alive "$d" || { tail -n 20 "$LOG/$d.log" >&2 || true; cmd_stop >/dev/null; die "$d exited during start-up (log: $LOG/$d.log)"; }
    done
    sleep 0.2
  done
  answering || { cmd_stop >/dev/null; die "Swift did not answer at $(auth_url) within 30 s (logs: $LOG)"; }
  for ((i = 0; i < 150; i++)); do
    if serving; then break; fi
    sleep 0.2
  done
  serving || { cmd_stop >/dev/null; die "Swift answers auth but does not store objects within 30 s (logs: $LOG)"; }
  print_env
}

cmd_stop() {
  local d pid i
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then
      pid=$(<"$RUN/$d.pid")
      kill "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
      [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
      echo "swift.sh: stopped $d ($pid)"
    fi
    rm -f "$RUN/$d.pid"
  done
}

# Fault injection: the proxy alone goes away (clients see resets, then refusals)
# and comes back on the same port; the other daemons and the data are untouched.
cmd_stop_proxy() {
  local pid i
  if alive proxy; then
    pid=$(<"$RUN/proxy.pid")
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    [[ -d /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
    echo "swift.sh: stopped proxy ($pid)"
  fi
  rm -f "$RUN/proxy.pid"
}

cmd_start_proxy() {
  local i
  if alive proxy && answering; then print_env; return; fi
  [[ -f $ETC/proxy-server.conf ]] || die "not set up: run '$0 start' first"
  alive proxy || {
    port_busy "$PORT" && die "port $PORT (proxy) is in use by another process"
    launch proxy "$PY" "$STATE/bin/swiftd.py" "$ETC" proxy "$ETC/proxy-server.conf"
  }
  for ((i = 0; i < 150; i++)); do
    answering && { print_env; return; }
    alive proxy || { tail -n 20 "$LOG/proxy.log" >&2 || true; die "proxy exited during start-up (log: $LOG/proxy.log)"; }
    sleep 0.2
  done
  die "the proxy did not answer at $(auth_url) within 30 s (log: $LOG/proxy.log)"
}

cmd_status() {
  local d rc=0
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then echo "$d: running (pid $(<"$RUN/$d.pid"), port $(port_of "$d"))"; else echo "$d: stopped"; rc=1; fi
  done
  if answering; then echo "auth: answering at $(auth_url)"; else echo "auth: not answering at $(auth_url)"; rc=1; fi
  return $rc
}

# Concurrent callers (parallel test files) queue here instead of racing to start.
serialise() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
}

case ${1:-} in
  install) cmd_install ;;
  start) serialise; cmd_start ;;
  stop) serialise; cmd_stop ;;
  status) cmd_status ;;
  env) print_env ;;
  stop-proxy) serialise; cmd_stop_proxy ;;
  start-proxy) serialise; cmd_start_proxy ;;
  *) die "usage: $0 install|start|stop|status|env|stop-proxy|start-proxy" ;;
esac
