#!/usr/bin/env bash
# npm test: type-check, lint, then every tier, each on the nginx versions it depends on:
#   unit, golden    once (golden runs nginx -t of each case on the build it is rendered for)
#   integration     on Debian's nginx 1.22 (/usr/sbin/nginx, the fallback path), then on
#                   nginx 1.30.4 (what the images run; ../shared/nginx/build.sh, cached)
#   e2e             on nginx 1.30.4 (on Debian's when 1.30.4 cannot be built)
# INGRESS_SIDECAR_TEST_NGINX tells a run its nginx (spec/helpers/nginx-under-test.ts). A version
# that is not there is skipped with one line saying why; every tier runs, and the exit status
# is 1 when any failed. A summary with each tier's wall time comes last.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

tsc -p . && npm run -s lint || exit 1

summary=()
failed=0
note() { summary+=("$(printf '%-34s %s' "$1" "$2")"); }
skip() {
  echo "SKIPPED: $1: $2"
  note "$1" "skipped: $2"
}
tier() { # tier NAME NGINX-OR-EMPTY MOCHA-ARGS...
  local name=$1 nginx=$2 start=$SECONDS
  shift 2
  echo
  echo "=== $name${nginx:+ (INGRESS_SIDECAR_TEST_NGINX=$nginx)}"
  if INGRESS_SIDECAR_TEST_NGINX=$nginx mocha "$@"; then
    note "$name" "passed in $((SECONDS - start)) s"
  else
    note "$name" "FAILED in $((SECONDS - start)) s"
    failed=1
  fi
}
version() { "$1" -v 2>&1 | sed -n 's|^nginx version: [A-Za-z]*/\([0-9.]*\).*|\1|p'; }

debian=/usr/sbin/nginx debian_missing=
[ -x "$debian" ] || debian_missing="$debian is not installed (Debian: apt-get install nginx-light)"
current= current_missing=
builder=../shared/nginx/build.sh
if [ ! -f "$builder" ]; then
  current_missing="$builder is not there"
else
  build_log=$(mktemp)
  if current=$(bash "$builder" 2>"$build_log" | tail -n 1) && [ -x "$current" ]; then :; else
    current_missing="$builder failed: $(tail -n 3 "$build_log" | tr '\n' ' ' | sed 's/ *$//')"
    current=
  fi
  rm -f "$build_log"
fi

tier 'unit and golden' '' 'spec/unit/**/*.spec.ts' 'spec/golden/**/*.spec.ts'

if [ -z "$debian_missing" ]; then
  tier "integration, nginx $(version "$debian")" "$debian" 'spec/integration/**/*.spec.ts'
else
  skip 'integration, nginx 1.22 (Debian)' "$debian_missing"
fi
if [ -n "$current" ]; then
  tier "integration, nginx $(version "$current")" "$current" 'spec/integration/**/*.spec.ts'
else
  skip 'integration, nginx 1.30.4' "$current_missing"
fi

e2e=(spec/helpers/apiserver.spec.ts 'spec/e2e/**/*.spec.ts')
if [ -n "$current" ]; then
  tier "e2e, nginx $(version "$current")" "$current" "${e2e[@]}"
elif [ -z "$debian_missing" ]; then
  skip 'e2e, nginx 1.30.4' "$current_missing; running it on Debian's instead"
  tier "e2e, nginx $(version "$debian")" "$debian" "${e2e[@]}"
else
  skip 'e2e' "no nginx: $debian_missing; $current_missing"
fi

echo
echo '=== summary'
printf '%s\n' "${summary[@]}"
exit $failed
