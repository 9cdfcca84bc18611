#!/bin/bash
# The image's entrypoint: renders this container's Envoy configuration with
# envoy-gen from environment variables (named after the reference sample's
# CDK context), then runs Envoy and stops it gracefully.
#
# On the container's stop signal (SIGTERM, or SIGINT) the script drains
# before stopping: a SIGTERM straight to Envoy would cut every request in
# flight, and Envoy 1.40 has no graceful stop of its own (its admin
# /drain_listeners?graceful closes the listeners after --drain-time-s but
# leaves the process running). So the script POSTs /healthcheck/fail (the
# frontend's /ready turns 503: load balancers stop sending), then
# /drain_listeners?graceful (every answer carries `connection: close`, or
# GOAWAY on HTTP/2, while requests in flight complete), waits
# ENVOY_DRAIN_SECONDS, and only then sends Envoy SIGTERM. A second signal
# stops Envoy at once. The script exits with Envoy's status.
# Bash, not sh: the admin calls use bash's /dev/tcp (the base image has no
# HTTP client).
#
#   ENVOY_ROLE=frontend (default): the edge: jwt_authn, jwt_scopes, SigV4.
#   ENVOY_ROLE=sidecar:            the egress sidecar of SERVICE_NAME.
#   JWT_SCOPES_FILTER=native (either role): the native build (an Envoy
#   dynamic module) of jwt_scopes and of the signing guard: no V8 at all.
#
# Each variable maps to one envoy-gen flag or Envoy option (ENVOY_BIN,
# ENVOY_GEN_BIN and ENVOY_RUN_DIR say where things are); the book
# ("Container image and docker compose", docs/src/container.md) lists them. A variable that is missing, empty where a
# value is needed, malformed or meant for the other role stops the container
# before anything runs, with a message naming it. Nothing here prints a
# credential: AWS_* secrets are only tested for presence, and Envoy reads
# them from its environment at run time (the rendered file never holds one).
# Arguments given to the container are appended to Envoy's command line.
set -eu
# Lists below are split on commas: no pathname expansion of their entries.
set -f

fail() {
    printf 'entrypoint: %s\n' "$*" >&2
    exit 2
}

# True when the variable named $1 is set to a non-empty value.
given() {
    eval "[ -n \"\${$1:-}\" ]"
}

require() {
    given "$1" || fail "$1 is required $2"
}

# Refuses variables that only the other role reads: a sidecar given
# JWT_ISSUER would otherwise start without checking any token, silently.
refuse_for_role() {
    role=$1
    shift
    for name in "$@"; do
        if given "$name"; then
            fail "$name applies to ENVOY_ROLE=$(other_role "$role") only; unset it for ENVOY_ROLE=$role"
        fi
    done
}

other_role() {
    case $1 in
        frontend) echo sidecar ;;
        *) echo frontend ;;
    esac
}

# readable NAME VALUE: the file named by variable NAME can be read.
readable() {
    [ -f "$2" ] && [ -r "$2" ] || fail "$1=$2: no readable file there"
}

# executable NAME VALUE: `command -v` finds a bare name on PATH and
# accepts a path to an executable file.
executable() {
    command -v "$2" >/dev/null 2>&1 || fail "$1=$2: no such executable"
}

# check_list NAME VALUE: a comma-separated list (render() turns each
# entry into one flag).
check_list() {
    case $2 in
        ,* | *,,*) fail "$1=$2: an entry is empty (entries are separated by single commas)" ;;
    esac
    old_ifs=$IFS
    IFS=,
    for entry in $2; do
        case $entry in
            *[[:space:]]*) IFS=$old_ifs; fail "$1: entry \`$entry\` contains white space" ;;
        esac
    done
    IFS=$old_ifs
}

# boolean NAME VALUE: true or false, in the spellings CDK context uses.
boolean() {
    case $2 in
        true | True | TRUE) echo true ;;
        false | False | FALSE) echo false ;;
        *) fail "$1=$2: use true or false" ;;
    esac
}

ENVOY_ROLE=${ENVOY_ROLE:-frontend}
ENVOY_BIN=${ENVOY_BIN:-envoy}
ENVOY_GEN_BIN=${ENVOY_GEN_BIN:-envoy-gen}
ENVOY_RUN_DIR=${ENVOY_RUN_DIR:-/tmp/envoy}
ENVOY_LOG_LEVEL=${ENVOY_LOG_LEVEL:-info}
ENVOY_MODE=${ENVOY_MODE:-serve}
ENVOY_DRAIN_SECONDS=${ENVOY_DRAIN_SECONDS:-20}

FRONTEND_ONLY="ENABLE_OAUTH JWT_ISSUER JWT_JWKS JWT_AUDIENCE JWT_CLIENT_ID JWKS_CA SERVICES DEFAULT_SERVICE"
SIDECAR_ONLY="SERVICE_NAME"

case $ENVOY_ROLE in
    frontend)
        # shellcheck disable=SC2086 # the lists are single words by construction
        refuse_for_role frontend $SIDECAR_ONLY
        oauth=$(boolean ENABLE_OAUTH "${ENABLE_OAUTH:-true}")
        if ! given SPEC_FILE; then
            require AWS_REGION "when no SPEC_FILE gives the region (the region of the Lattice services)"
            if [ "$oauth" = true ]; then
                why="when ENABLE_OAUTH is true and no SPEC_FILE names an issuer"
                require JWT_ISSUER "$why (the token issuer, \`iss\`)"
                require JWT_JWKS "$why (the issuer's JWKS URL)"
                if ! given JWT_CLIENT_ID; then
                    require JWT_AUDIENCE "$why (accepted audiences, comma-separated; or JWT_CLIENT_ID for \
tokens that carry \`client_id\` instead of \`aud\`, as Cognito access tokens do)"
                fi
            fi
        fi
        if [ "$oauth" = false ]; then
            for name in JWT_ISSUER JWT_JWKS JWT_AUDIENCE JWT_CLIENT_ID JWKS_CA; do
                if given "$name"; then
                    fail "$name is set but ENABLE_OAUTH is false: no token would be checked against it"
                fi
            done
        fi
        if given JWT_AUDIENCE; then check_list JWT_AUDIENCE "$JWT_AUDIENCE"; fi
        if given JWT_CLIENT_ID; then check_list JWT_CLIENT_ID "$JWT_CLIENT_ID"; fi
        if given SERVICES; then check_list SERVICES "$SERVICES"; fi
        if given JWKS_CA; then readable JWKS_CA "$JWKS_CA"; fi
        ;;
    sidecar)
        # shellcheck disable=SC2086
        refuse_for_role sidecar $FRONTEND_ONLY
        require SERVICE_NAME "for ENVOY_ROLE=sidecar (the spec's service whose calls this sidecar signs)"
        require SPEC_FILE "for ENVOY_ROLE=sidecar (the spec describing the service, its role and its calls)"
        ;;
    *)
        fail "ENVOY_ROLE=$ENVOY_ROLE: use frontend or sidecar"
        ;;
esac

if given SPEC_FILE; then readable SPEC_FILE "$SPEC_FILE"; fi
if given LATTICE_CA; then readable LATTICE_CA "$LATTICE_CA"; fi
# NAME=HOST entries: the DNS names Lattice generated for the services
# without a custom domain name (envoy-gen checks the names and hosts).
if given LATTICE_SERVICE_HOSTS; then
    check_list LATTICE_SERVICE_HOSTS "$LATTICE_SERVICE_HOSTS"
    old_ifs=$IFS
    IFS=,
    for entry in $LATTICE_SERVICE_HOSTS; do
        case $entry in
            ?*=?*) ;;
            *) IFS=$old_ifs; fail "LATTICE_SERVICE_HOSTS: entry \`$entry\` is not NAME=HOST (a service of the spec and the DNS name Lattice gave it)" ;;
        esac
    done
    IFS=$old_ifs
fi
# Unset, the spec's `wasm` or envoy-gen's default applies: where this image
# keeps the filter.
if given JWT_SCOPES_WASM; then readable JWT_SCOPES_WASM "$JWT_SCOPES_WASM"; fi
# Both roles: the build of the frontend's jwt_scopes filter and of every
# signing guard (frontend and sidecars). Unset, the spec's `filter_build`
# or envoy-gen's default (wasm) applies.
case ${JWT_SCOPES_FILTER:-wasm} in
    wasm | native) ;;
    *) fail "JWT_SCOPES_FILTER=$JWT_SCOPES_FILTER: use wasm (portable) or native (the Envoy 1.40 dynamic module)" ;;
esac
if given JWT_SCOPES_NATIVE_MODULE; then readable JWT_SCOPES_NATIVE_MODULE "$JWT_SCOPES_NATIVE_MODULE"; fi
# envoy-gen checks the value. A source with nothing to read would leave
# Envoy no credentials: every request to Lattice refused (503).
case ${CREDENTIALS_SOURCE:-} in
    env)
        why="when CREDENTIALS_SOURCE=env (Envoy signs with the environment's credentials only)"
        require AWS_ACCESS_KEY_ID "$why"
        require AWS_SECRET_ACCESS_KEY "$why"
        ;;
    container)
        if ! given AWS_CONTAINER_CREDENTIALS_RELATIVE_URI && ! given AWS_CONTAINER_CREDENTIALS_FULL_URI; then
            fail "CREDENTIALS_SOURCE=container, but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor \
AWS_CONTAINER_CREDENTIALS_FULL_URI is set (ECS sets the first for a task with a task role)"
        fi
        ;;
    web_identity)
        # IRSA: EKS mounts the token and sets this variable. Without a
        # readable token Envoy 1.40 holds every request until it times out,
        # so refuse to start instead.
        require AWS_WEB_IDENTITY_TOKEN_FILE "when CREDENTIALS_SOURCE=web_identity (IRSA sets it)"
        [ -r "$AWS_WEB_IDENTITY_TOKEN_FILE" ] ||
            fail "CREDENTIALS_SOURCE=web_identity, but AWS_WEB_IDENTITY_TOKEN_FILE ($AWS_WEB_IDENTITY_TOKEN_FILE) is not a readable file"
        ;;
esac
case $ENVOY_LOG_LEVEL in
    info | warning | warn | error | critical | off) ;;
    trace | debug) fail "ENVOY_LOG_LEVEL=$ENVOY_LOG_LEVEL: refused: at this level Envoy logs request headers, bearer tokens and signatures included" ;;
    *) fail "ENVOY_LOG_LEVEL=$ENVOY_LOG_LEVEL: use info, warning, error, critical or off" ;;
esac
case $ENVOY_MODE in
    serve | validate) ;;
    *) fail "ENVOY_MODE=$ENVOY_MODE: use serve (run Envoy) or validate (check the rendered configuration and exit)" ;;
esac
case $ENVOY_DRAIN_SECONDS in
    '' | *[!0-9]*) fail "ENVOY_DRAIN_SECONDS=$ENVOY_DRAIN_SECONDS: use a whole number of seconds" ;;
esac
if given ENVOY_CONCURRENCY; then
    case $ENVOY_CONCURRENCY in
        *[!0-9]* | 0*) fail "ENVOY_CONCURRENCY=$ENVOY_CONCURRENCY: use a positive whole number of worker threads" ;;
    esac
fi
executable ENVOY_BIN "$ENVOY_BIN"
executable ENVOY_GEN_BIN "$ENVOY_GEN_BIN"

# envoy-gen's command line, built in this function's own "$@" (the script's
# arguments stay Envoy's). Comma-separated lists become repeated flags.
render() {
    set -- "$ENVOY_ROLE" -o "$1"
    if given SPEC_FILE; then set -- "$@" --spec "$SPEC_FILE"; fi
    if given AWS_REGION; then set -- "$@" --region "$AWS_REGION"; fi
    if given APP_DOMAIN; then set -- "$@" --domain "$APP_DOMAIN"; fi
    if given CREDENTIALS_SOURCE; then set -- "$@" --credentials "$CREDENTIALS_SOURCE"; fi
    if given LATTICE_ENDPOINT; then set -- "$@" --lattice-endpoint "$LATTICE_ENDPOINT"; fi
    if given LATTICE_CA; then set -- "$@" --lattice-ca "$LATTICE_CA"; fi
    if given LISTEN_ADDRESS; then set -- "$@" --listen "$LISTEN_ADDRESS"; fi
    if given ADMIN_ADDRESS; then set -- "$@" --admin "$ADMIN_ADDRESS"; fi
    if given JWT_SCOPES_WASM; then set -- "$@" --wasm "$JWT_SCOPES_WASM"; fi
    if given JWT_SCOPES_FILTER; then set -- "$@" --filter "$JWT_SCOPES_FILTER"; fi
    if given JWT_SCOPES_NATIVE_MODULE; then set -- "$@" --native-module "$JWT_SCOPES_NATIVE_MODULE"; fi
    old_ifs=$IFS
    IFS=,
    for entry in ${LATTICE_SERVICE_HOSTS:-}; do set -- "$@" --service-host "$entry"; done
    IFS=$old_ifs
    if [ "$ENVOY_ROLE" = sidecar ]; then
        set -- "$@" --service "$SERVICE_NAME"
    else
        if [ "$oauth" = false ]; then set -- "$@" --no-oauth; fi
        if given JWT_ISSUER; then set -- "$@" --issuer "$JWT_ISSUER"; fi
        if given JWT_JWKS; then set -- "$@" --jwks-uri "$JWT_JWKS"; fi
        if given JWKS_CA; then set -- "$@" --jwks-ca "$JWKS_CA"; fi
        if given DEFAULT_SERVICE; then set -- "$@" --default-service "$DEFAULT_SERVICE"; fi
        old_ifs=$IFS
        IFS=,
        for audience in ${JWT_AUDIENCE:-}; do set -- "$@" --audience "$audience"; done
        for client_id in ${JWT_CLIENT_ID:-}; do set -- "$@" --client-id "$client_id"; done
        for service in ${SERVICES:-}; do set -- "$@" --service "$service"; done
        IFS=$old_ifs
    fi
    "$ENVOY_GEN_BIN" "$@"
}

mkdir -p "$ENVOY_RUN_DIR" || fail "ENVOY_RUN_DIR=$ENVOY_RUN_DIR: cannot create it"
config=$ENVOY_RUN_DIR/envoy.yaml
admin_address_file=$ENVOY_RUN_DIR/admin-address
# A file left by an earlier run must not pass for this one's.
rm -f "$config" "$admin_address_file"
render "$config" || fail "envoy-gen could not render the $ENVOY_ROLE configuration (errors above; its flags \
come from: --spec SPEC_FILE, --region AWS_REGION, --domain APP_DOMAIN, --issuer JWT_ISSUER, --jwks-uri JWT_JWKS, \
--audience JWT_AUDIENCE, --client-id JWT_CLIENT_ID, --jwks-ca JWKS_CA, --service SERVICES or SERVICE_NAME, --default-service DEFAULT_SERVICE, \
--wasm JWT_SCOPES_WASM, --filter JWT_SCOPES_FILTER, --native-module JWT_SCOPES_NATIVE_MODULE, --no-oauth ENABLE_OAUTH=false, --credentials CREDENTIALS_SOURCE, \
--lattice-endpoint LATTICE_ENDPOINT, --lattice-ca LATTICE_CA, --service-host LATTICE_SERVICE_HOSTS, --listen LISTEN_ADDRESS, --admin ADMIN_ADDRESS)"
printf 'entrypoint: rendered the %s configuration to %s; starting Envoy (%s)\n' "$ENVOY_ROLE" "$config" "$ENVOY_MODE" >&2

# --disable-hot-restart: a container restarts by being replaced, and hot
# restart would need shared memory. --drain-time-s is how long
# /drain_listeners?graceful keeps the listeners open (the same as the
# script's wait before stopping Envoy).
set -- --config-path "$config" --mode "$ENVOY_MODE" --log-level "$ENVOY_LOG_LEVEL" \
    --admin-address-path "$admin_address_file" --disable-hot-restart \
    --drain-time-s "$ENVOY_DRAIN_SECONDS" "$@"
if given ENVOY_CONCURRENCY; then set -- --concurrency "$ENVOY_CONCURRENCY" "$@"; fi
if [ "$ENVOY_MODE" = validate ]; then exec "$ENVOY_BIN" "$@"; fi
# --drain-strategy immediate: once draining, every answer closes its
# connection (the default, gradual, would close a growing share of them).
set -- --drain-strategy immediate "$@"

# admin METHOD PATH: true when Envoy's admin interface answers 200.
admin() {
    local address host port status
    address=$(cat "$admin_address_file" 2>/dev/null) || return 1
    host=${address%:*}
    port=${address##*:}
    host=${host#[}
    host=${host%]}
    exec 3<>"/dev/tcp/$host/$port" || return 1
    printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
    IFS= read -r -t 5 status <&3 || status=
    exec 3<&-
    case $status in
        "HTTP/1."?" 200 "*) return 0 ;;
        *) return 1 ;;
    esac
}

stopping=
timer=
on_stop() {
    if [ -n "$stopping" ]; then
        printf 'entrypoint: second stop signal: stopping Envoy now\n' >&2
        kill -TERM "$envoy" 2>/dev/null
        return
    fi
    stopping=1
    if [ "$ENVOY_DRAIN_SECONDS" -gt 0 ] && admin POST /healthcheck/fail && admin POST '/drain_listeners?graceful'; then
        printf 'entrypoint: stop signal: draining for %ss, then stopping Envoy (a second signal stops it at once)\n' \
            "$ENVOY_DRAIN_SECONDS" >&2
        # The wait is a child the main loop waits on with Envoy: no process
        # outlives the script.
        sleep "$ENVOY_DRAIN_SECONDS" &
        timer=$!
    else
        printf 'entrypoint: stop signal: stopping Envoy now (no drain: ENVOY_DRAIN_SECONDS=%s or the admin interface did not answer)\n' \
            "$ENVOY_DRAIN_SECONDS" >&2
        kill -TERM "$envoy" 2>/dev/null
    fi
}

"$ENVOY_BIN" "$@" &
envoy=$!
trap on_stop TERM INT
# From here on a failing `wait` or `kill` is an answer, not an error.
set +e
# `wait` returns early (status > 128) whenever a trapped signal arrives,
# and when the drain's wait ends; only Envoy's own exit ends the loop.
while :; do
    if [ -n "$timer" ]; then wait -n "$envoy" "$timer"; else wait "$envoy"; fi
    kill -0 "$envoy" 2>/dev/null || break
    if [ -n "$timer" ] && ! kill -0 "$timer" 2>/dev/null; then
        timer=
        kill -TERM "$envoy" 2>/dev/null
    fi
done
if [ -n "$timer" ]; then kill "$timer" 2>/dev/null; fi
# Bash keeps an exited child's status: this is Envoy's, whichever wait
# reaped it.
wait "$envoy"
