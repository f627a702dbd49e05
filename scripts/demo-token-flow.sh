#!/usr/bin/env bash
# The natif token flow, step by step with curl against the local simulator:
# password grant, upload, refresh, and what a reused refresh token does to the
# session. Each step checks the answer it expects and stops with an error if
# the simulator answers otherwise, so this script doubles as a smoke test.
#
# Usage: scripts/demo-token-flow.sh [path/to/natif-uploader]
set -euo pipefail

BIN=${1:-bin/natif-uploader}
work=$(mktemp -d)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Start the simulator on a free loopback port and read its address.
"$BIN" fake-api --addr 127.0.0.1:0 --log-level warn >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 100); do
  URL=$(sed -n 's/^natif simulator listening on \(http:[^ ]*\).*/\1/p' "$work/sim.out")
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "${URL:-}" ] || { echo "simulator did not start:"; cat "$work/sim.err"; exit 1; }
echo "natif simulator at $URL"

# field NAME: the string value of a top-level JSON field in $body.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$body"; }
short() { printf '%s…' "${1:0:16}"; }
# step TITLE WANT_STATUS CURL_ARGS...: run curl, show status and body, check the status.
step() {
  local title=$1 want=$2; shift 2
  echo
  echo "== $title"
  body=$(curl -sS -o - -w '\n%{http_code}' "$@")
  status=${body##*$'\n'}
  body=${body%$'\n'*}
  echo "HTTP $status"
  # Tokens are long: show their first characters only.
  sed -E 's/("(access|refresh)_token":")([^"]{16})[^"]*"/\1\3…"/g' <<<"$body"
  if [ "$status" != "$want" ]; then
    echo "unexpected: wanted HTTP $want" >&2
    exit 1
  fi
}

printf '%%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%%%EOF\n' >"$work/invoice.pdf"

step "1. Password grant: POST /token?realm=public" 200 \
  -X POST "$URL/token?realm=public" \
  -d grant_type=password -d username=demo -d password=demo \
  --data-urlencode 'scope=capturing_read capturing_write'
AT1=$(field access_token); RT1=$(field refresh_token)

step "2. Upload with the access token: POST /documents/" 201 \
  -H "Authorization: Bearer $AT1" -F "file=@$work/invoice.pdf;type=application/pdf" \
  "$URL/documents/"

step "3. Refresh: grant_type=refresh_token with refresh token $(short "$RT1")" 200 \
  -X POST "$URL/token?realm=public" -d grant_type=refresh_token -d "refresh_token=$RT1"
AT2=$(field access_token); RT2=$(field refresh_token)

step "4. Reuse the first refresh token: natif logs the whole session out" 400 \
  -X POST "$URL/token?realm=public" -d grant_type=refresh_token -d "refresh_token=$RT1"
grep -q 'Maximum allowed refresh token reuse exceeded' <<<"$body"

step "5. The newest refresh token of that session is dead too" 400 \
  -X POST "$URL/token?realm=public" -d grant_type=refresh_token -d "refresh_token=$RT2"
grep -q 'Session not active' <<<"$body"

step "6. And so is its newest access token" 401 \
  -H "Authorization: Bearer $AT2" -F "file=@$work/invoice.pdf" "$URL/documents/"

step "7. Wrong password: 401 invalid_grant (five quick ones lock the account)" 401 \
  -X POST "$URL/token?realm=public" -d grant_type=password -d username=demo -d password=wrong

step "8. API-key auth needs no token: Authorization: ApiKey demo-key" 201 \
  -H "Authorization: ApiKey demo-key" -F "file=@$work/invoice.pdf" "$URL/documents/"

step "9. The simulator's counters: GET /_sim/stats" 200 "$URL/_sim/stats"
grep -q '"reuse_detections":1' <<<"$body"

echo
echo "Token flow as natif documents it: refresh tokens are single-use, and a reuse kills the session."
