#!/bin/bash
# The image's HEALTHCHECK: healthy once Envoy's admin interface answers
# /ready with 200 (listeners and clusters initialised). The admin address is
# the one Envoy wrote to ENVOY_RUN_DIR/admin-address at start, so it is
# right for either role and any ADMIN_ADDRESS. Bash for /dev/tcp: the base
# image has no HTTP client.
set -euo pipefail

address=$(cat "${ENVOY_RUN_DIR:-/tmp/envoy}/admin-address")
host=${address%:*}
port=${address##*:}
host=${host#[}
host=${host%]}
exec 3<>"/dev/tcp/$host/$port"
printf 'GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r status <&3
case $status in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) exit 1 ;;
esac
