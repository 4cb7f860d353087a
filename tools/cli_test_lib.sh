# shellcheck shell=bash
# Sourced by the executables' CLI tests (tools/*/tests/*_cli_test.sh): the steps they share.
# Plain bash (/dev/tcp), so they need no curl.

# help_mentions <executable> <option>: its --help names the option. Read whole before grep:
# `grep -q` stops at the first match, and with pipefail the executable's SIGPIPE on the
# rest of a long --help failed the tests now and then.
help_mentions() {
  local help
  help="$("$1" --help)"
  grep -q -- "$2" <<<"$help"
}

# first_line <file> <tries>: the file's first line, waiting for it up to <tries> x 0.1 s.
first_line() {
  for _ in $(seq 1 "$2"); do
    [[ -s "$1" ]] && break
    sleep 0.1
  done
  head -n 1 "$1"
}

# http_get_status <port> <path> <host header> <authorization header line or empty>: the
# status line of a GET on 127.0.0.1:<port>.
http_get_status() {
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\n%bConnection: close\r\n\r\n' "$2" "$3" "$4" >&3
  head -n 1 <&3
  exec 3>&-
}

# terminate <pid>: SIGTERM, then wait for it; returns its exit status.
terminate() {
  kill -TERM "$1"
  wait "$1"
}
