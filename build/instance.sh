#!/usr/bin/env bash
# Start, stop or check a private httpd running mod_promptenchanter on 127.0.0.1.
#
#   build/instance.sh start|stop|graceful|restart|configtest|render|status|base
#
# `base` prints the folder that holds instances and test runs of this checkout: the checkout
# itself, or /var/lib/mod_promptenchanter/... when httpd's children could not reach it.
#
# The instance lives in $PE_INSTANCE_DIR (default ./instance, git-ignored): its own ServerRoot,
# conf, pid file, logs, SQLite file and secrets. Environment (all optional):
#   PE_PORT (8080)  PE_MPM (event|prefork|worker)  PE_PREFORK_SERVERS (4)  PE_LOGLEVEL
#   PE_UPSTREAM_URL PE_UPSTREAM_KEY PE_SEARCH_URL PE_SMTP_URL PE_MEMCACHED (space-separated host:port)
#   PE_EMAIL_VERIFICATION (On|Off; On when PE_SMTP_URL is set) PE_SMTP_STARTTLS (Required|Optional) PE_MAIL_FROM
#   PE_DBD_DRIVER (sqlite3|pgsql) PE_DBD_PARAMS PE_STORE (dbd|mongodb) PE_MONGO_URI
#   PE_RESEARCH_ALLOW_NETWORKS
#   PE_IP_RATE_LIMIT (PEIPRateLimit value, e.g. Off)  PE_AUTO_BLOCK (PEAutoBlock value, e.g. Off)
#   PE_PRINCIPAL_CACHE_TTL (PEPrincipalCacheTTL value, e.g. 0)
#   PE_MODULE (path of mod_promptenchanter.so)  PE_EXTRA_CONF (a file copied into conf/extra/)
#   PE_HTTPD_PRELOAD (libraries preloaded into httpd only, e.g. the ASan runtime)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-status}
server_user=www-data

# Run as root, httpd's children serve as $server_user, which must be able to reach the instance
# (DocumentRoot, data, run). A checkout in root's home (0700) or in a `mktemp -d` folder is not
# reachable: the children would answer 403 to everything. Such a checkout keeps its instances
# (and the test runs) under /var/lib/mod_promptenchanter/<name>-<hash of the checkout path>.
reachable() {  # reachable DIR: the server user can search DIR and every parent of it
  [ "$(id -u)" = 0 ] || return 0
  runuser -u "$server_user" -- test -x "$1" 2>/dev/null
}
# The first component of DIR's path that the server user cannot search.
unreachable_part() {
  local d=/ part
  local IFS=/
  for part in $1; do
    [ -n "$part" ] || continue
    d=${d%/}/$part
    runuser -u "$server_user" -- test -x "$d" 2>/dev/null || { echo "$d"; return; }
  done
}
base_dir() {
  if reachable "$top"; then echo "$top"; return; fi
  local b
  b="/var/lib/mod_promptenchanter/$(basename "$top")-$(printf '%s' "$top" | sha256sum | cut -c1-12)"
  install -d -m 755 /var/lib/mod_promptenchanter "$b"
  echo "$b"
}
if [ -n "${PE_INSTANCE_DIR:-}" ]; then
  inst=$PE_INSTANCE_DIR
else
  inst=$(base_dir)/instance
fi
port=${PE_PORT:-8080}
mpm=${PE_MPM:-event}
module=${PE_MODULE:-$top/.libs/mod_promptenchanter.so}
apxs=$(command -v apxs2 || command -v apxs || true)
httpd=/usr/sbin/apache2
moddir=/usr/lib/apache2/modules
if [ -n "$apxs" ]; then
  httpd=$($apxs -q SBINDIR)/$($apxs -q TARGET)
  moddir=$($apxs -q LIBEXECDIR)
fi
conf=$inst/conf/httpd.conf

# httpd with PE_HTTPD_PRELOAD (libraries preloaded into httpd only, e.g. the ASan runtime).
run_httpd() {
  LD_PRELOAD="${PE_HTTPD_PRELOAD:-${LD_PRELOAD:-}}" "$httpd" "$@"
}
pidfile=$inst/run/httpd.pid

# Render conf/httpd.conf.in and the environment snippet into the instance.
render() {
  mkdir -p "$inst"/{conf/extra,run,logs,data,htdocs,secrets}
  if ! reachable "$inst"; then
    echo "instance: $server_user (the user httpd's children run as) cannot reach $inst:" \
         "no search permission on $(unreachable_part "$inst"). Set PE_INSTANCE_DIR to a folder it can reach." >&2
    exit 1
  fi
  if [ "$inst" = "$(base_dir)/instance" ] && [ "$(base_dir)" != "$top" ] && [ ! -e "$top/instance" ]; then
    ln -s "$inst" "$top/instance"  # a way to find it from the checkout (git-ignored)
  fi
  chmod 700 "$inst/secrets"
  for k in server encryption; do
    if [ ! -s "$inst/secrets/$k.key" ]; then
      (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$inst/secrets/$k.key"; echo >> "$inst/secrets/$k.key")
    fi
  done
  local driver=${PE_DBD_DRIVER:-sqlite3}
  local params=${PE_DBD_PARAMS:-}
  if [ -z "$params" ]; then
    if [ "$driver" = sqlite3 ]; then params=$inst/data/pe.db; else params="host=127.0.0.1 port=5432 dbname=pe"; fi
  fi
  local usergroup=""
  if [ "$(id -u)" = 0 ]; then
    usergroup=$'User www-data\nGroup www-data'
    chown -R www-data:www-data "$inst/data"
    # The database holds e-mails and conversations: only the server user reads it.
    chmod 700 "$inst/data"
    chmod 1777 "$inst/run"
  fi
  sed -e "s|@INSTANCE@|$inst|g" -e "s|@TOP@|$top|g" -e "s|@PORT@|$port|g" -e "s|@MPM@|$mpm|g" \
      -e "s|@MODDIR@|$moddir|g" -e "s|@MODULE@|$module|g" \
      -e "s|@LOGLEVEL@|${PE_LOGLEVEL:-info}|g" -e "s|@PREFORK_SERVERS@|${PE_PREFORK_SERVERS:-4}|g" \
      -e "s|@DBD_DRIVER@|$driver|g" -e "s|@DBD_PARAMS@|$params|g" \
      "$top/conf/httpd.conf.in" | awk -v ug="$usergroup" '{ if ($0 == "@USERGROUP@") print ug; else print }' > "$conf"
  # Each environment setting is applied through the directive that implements it; a setting
  # whose feature this build lacks is skipped by <IfDirective>.
  {
    echo "# Rendered from the environment by build/instance.sh."
    envdir PEStore "${PE_STORE:-}" raw
    envdir PEMongoURI "${PE_MONGO_URI:-}"
    envdir PEUpstreamURL "${PE_UPSTREAM_URL:-}"
    envdir PEUpstreamKey "${PE_UPSTREAM_KEY:-}"
    envdir PESearchURL "${PE_SEARCH_URL:-}"
    envdir PESMTPURL "${PE_SMTP_URL:-}"
    # A mail server turns e-mail verification on unless PE_EMAIL_VERIFICATION says Off.
    envdir PEEmailVerification "${PE_EMAIL_VERIFICATION:-${PE_SMTP_URL:+On}}" raw
    envdir PESMTPStartTLS "${PE_SMTP_STARTTLS:-}" raw
    envdir PEMailFrom "${PE_MAIL_FROM:-}"
    envdir PECacheServers "${PE_MEMCACHED:-}" raw
    envdir PEResearchAllowNetworks "${PE_RESEARCH_ALLOW_NETWORKS:-}" raw
    envdir PEIPRateLimit "${PE_IP_RATE_LIMIT:-}" raw
    envdir PEAutoBlock "${PE_AUTO_BLOCK:-}" raw
    envdir PEPrincipalCacheTTL "${PE_PRINCIPAL_CACHE_TTL:-}" raw
  } > "$inst/conf/pe-env.conf"
  chmod 600 "$inst/conf/pe-env.conf"
  rm -f "$inst"/conf/extra/*.conf
  if [ -n "${PE_EXTRA_CONF:-}" ]; then cp "$PE_EXTRA_CONF" "$inst/conf/extra/zz-extra.conf"; fi
}

# One directive line wrapped in <IfDirective>, only when the value is set.
envdir() {
  local name=$1 value=$2 mode=${3:-quoted}
  [ -n "$value" ] || return 0
  echo "<IfDirective $name>"
  if [ "$mode" = raw ]; then echo "    $name $value"; else echo "    $name \"$value\""; fi
  echo "</IfDirective>"
}

running_pid() {
  [ -s "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  # A zombie still answers kill -0; look at its state.
  if [ -r "/proc/$pid/stat" ] && ! awk '{exit ($3=="Z")?0:1}' "/proc/$pid/stat"; then echo "$pid"; return 0; fi
  return 1
}

wait_ready() {
  local i
  for i in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then return 0; fi
    if ! running_pid >/dev/null; then break; fi
    sleep 0.1
  done
  echo "instance: httpd did not become ready; last lines of $inst/logs/error.log:" >&2
  tail -n 20 "$inst/logs/error.log" >&2 || true
  return 1
}

# Live (non-zombie) processes of this instance: the parent and its children.
instance_pids() {
  local pid stat args
  ps -eo pid=,stat=,args= | while read -r pid stat args; do
    case "$stat" in Z*) continue ;; esac
    case "$args" in "$httpd -f $conf"*) echo "$pid" ;; esac
  done
}

# Stop by pid and return only when no process of the instance is left.
stop() {
  local pid i
  if pid=$(running_pid); then kill -TERM "$pid" 2>/dev/null || true; fi
  for i in $(seq 1 150); do
    if ! running_pid >/dev/null && [ -z "$(instance_pids)" ]; then rm -f "$pidfile"; return 0; fi
    sleep 0.1
  done
  echo "instance: httpd did not stop in 15 s; killing $(instance_pids | tr '\n' ' ')" >&2
  instance_pids | xargs -r kill -KILL 2>/dev/null || true
  rm -f "$pidfile"
}

case "$cmd" in
  render) render ;;
  configtest) render; run_httpd -t -f "$conf" ;;
  start)
    if [ ! -f "$module" ]; then echo "instance: $module is missing: run make" >&2; exit 1; fi
    if running_pid >/dev/null; then echo "instance: already running (pid $(cat "$pidfile"))" >&2; exit 1; fi
    render
    run_httpd -t -f "$conf" >/dev/null 2>"$inst/logs/configtest.log" || { cat "$inst/logs/configtest.log" >&2; exit 1; }
    run_httpd -f "$conf" -k start
    wait_ready
    echo "mod_promptenchanter is running at http://127.0.0.1:$port/ (instance $inst; stop with: make stop)"
    ;;
  stop) stop ;;
  graceful|restart)
    render
    run_httpd -f "$conf" -k "$cmd"
    ;;
  base) base_dir ;;
  status)
    if pid=$(running_pid); then echo "running pid $pid port $port"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|graceful|restart|configtest|render|status|base" >&2; exit 2 ;;
esac
