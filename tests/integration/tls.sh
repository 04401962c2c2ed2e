#!/usr/bin/env bash
# TLS for the native protocol: the system's convert on the drop-in
# libMagickCore through the server over TLS 1.3, keyed from the shared
# secret (the default) and with certificates, pixels identical to the
# memory cache's; a relay that records the bytes finds no pixel in them, one
# that alters them makes convert fail, never succeed with other pixels;
# mismatched settings fail with an error naming the setting on both sides;
# stock clients are still served, in plaintext, on the same port.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
RELAY=${RELAY:-$(dirname "$MAGICK_DPC")/../tests/tools/relay}
NATIVE_CHECK=${NATIVE_CHECK:-$(dirname "$MAGICK_DPC")/../tests/tools/native-check}

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server                        # the default: --tls on
mem_convert -seed 3 -size 320x200 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem-blur.miff"
# A solid colour: in a Q16 pixel cache each pixel is blue, green, red,
# opacity as little-endian 16-bit words.
mem_convert -size 300x200 'xc:#123456789abc' "$WORK/solid.miff"
PATTERN='bc9a78563412 0000bc9a785634120000'

# tls_convert PORT ARGS...: the drop-in on PORT, the distributed tier only,
# a tile cache far smaller than the image (its pixels go to the server).
tls_convert() {
    local port=$1
    shift
    LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
        -define cache:hosts=127.0.0.1:"$port" -define cache:tiers=distributed \
        -define cache:dpc-tile-cache=32KiB -define cache:dpc-timeout=5 "$@"
}

psk_default() {
    tls_convert "$PORT" "$WORK/in.miff" -blur 0x2 "$WORK/tls-blur.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/tls-blur.miff"
    grep -q '(native, TLS): peer closed' "$WORK/server.log"
}
check "TLS with the secret's PSK (default): blur identical to memory" psk_default

native_stream() {
    "$NATIVE_CHECK" random "$SECRET" 203 157 5 127.0.0.1:"$PORT"
}
check "native client over TLS: random regions, every byte checked" native_stream

stock_same_port() {
    dpc_convert "$WORK/in.miff" -blur 0x2 "$WORK/stock-blur.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/stock-blur.miff"
}
check "stock clients still served, plaintext, on the same port" stock_same_port

# start_relay MODE ARG TARGET: sets RPORT.
start_relay() {
    "$RELAY" "$1" "$2" "$3" > "$WORK/relay.out" &
    RELAY_PID=$!
    track "$RELAY_PID"
    for _ in $(seq 100); do
        RPORT=$(sed -n 's/^port //p' "$WORK/relay.out")
        [ -n "$RPORT" ] && return 0
        sleep 0.05
    done
    return 1
}
stop_relay() {
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
}

# has_pattern FILE: the solid colour's 16 bytes occur in FILE.
has_pattern() {
    python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.exit(0 if bytes.fromhex(sys.argv[2].replace(" ","")) in d else 1)' "$1" "$PATTERN"
}

recorded_tls() {
    rm -f "$WORK/rec-tls"
    start_relay record "$WORK/rec-tls" "$PORT"
    tls_convert "$RPORT" "$WORK/solid.miff" -flip "$WORK/solid-tls.miff"
    stop_relay
    same_pixels "$WORK/solid.miff" "$WORK/solid-tls.miff"
    [ "$(stat -c %s "$WORK/rec-tls")" -gt 400000 ]     # the pixels went by
    ! has_pattern "$WORK/rec-tls"
}
check "a recording relay sees no pixel bytes under TLS" recorded_tls

# The same recording without TLS, to show the pattern test can see pixels.
extra_server PBOTH both --tls both
recorded_plain() {
    rm -f "$WORK/rec-plain"
    start_relay record "$WORK/rec-plain" "$PBOTH"
    tls_convert "$RPORT" -define cache:dpc-tls=off "$WORK/solid.miff" -flip \
        "$WORK/solid-plain.miff"
    stop_relay
    same_pixels "$WORK/solid.miff" "$WORK/solid-plain.miff"
    has_pattern "$WORK/rec-plain"
}
check "(control) the same recording in plaintext holds the pixel bytes" recorded_plain

tampered() {
    local n rc
    for n in 100 5000 200000; do
        start_relay flip "$n" "$PORT"
        rc=0
        tls_convert "$RPORT" "$WORK/in.miff" -blur 0x2 "$WORK/flip-$n.miff" \
            2> "$WORK/flip-$n.err" || rc=$?
        stop_relay
        cat "$WORK/flip-$n.err"
        if [ "$rc" -eq 0 ]; then
            same_pixels "$WORK/mem-blur.miff" "$WORK/flip-$n.miff"
        else
            grep -q '127.0.0.1:'"$RPORT" "$WORK/flip-$n.err"
        fi
    done
}
check "a relay flipping server bytes: convert fails, never wrong pixels" tampered

trickled() {
    local n
    for n in 7 997; do
        start_relay trickle "$n" "$PORT"
        tls_convert "$RPORT" -define cache:dpc-tile-cache=1MiB "$WORK/solid.miff" \
            -flip "$WORK/trickle-$n.miff"
        stop_relay
        same_pixels "$WORK/solid.miff" "$WORK/trickle-$n.miff"
    done
}
check "TLS records cut into 7- and 997-byte pieces: identical pixels" trickled

# The server tells a ClientHello from plaintext by the client's first 8
# bytes: a first segment of 1, 2 or 5 bytes must not fool it either way.
split_first() {
    local n
    for n in 1 2 5; do
        start_relay split "$n" "$PORT"
        tls_convert "$RPORT" "$WORK/solid.miff" -flip "$WORK/split-$n.miff"
        PORT=$RPORT dpc_convert "$WORK/solid.miff" -flip \
            "$WORK/split-stock-$n.miff"
        stop_relay
        same_pixels "$WORK/solid.miff" "$WORK/split-$n.miff"
        same_pixels "$WORK/solid.miff" "$WORK/split-stock-$n.miff"
    done
}
check "a first segment of 1, 2 or 5 bytes: TLS and stock clients both served" \
    split_first

plain_to_tls_only() {
    ! tls_convert "$PORT" -define cache:dpc-tls=off "$WORK/in.miff" \
        "$WORK/x.miff" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q 'requires TLS: set cache:dpc-tls=on' "$WORK/err"
    grep -q 'plaintext native client refused: this server requires TLS' \
        "$WORK/server.log"
}
check "plaintext drop-in to a TLS-only server: both sides name the setting" \
    plain_to_tls_only

extra_server POFF off --tls off
tls_to_plain_only() {
    ! tls_convert "$POFF" "$WORK/in.miff" "$WORK/x.miff" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q 'does not accept TLS.*set cache:dpc-tls=off' "$WORK/err"
    grep -q 'TLS client refused: this server runs with --tls off' \
        "$WORK/off.log"
    tls_convert "$POFF" -define cache:dpc-tls=off "$WORK/in.miff" -blur 0x2 \
        "$WORK/off-blur.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/off-blur.miff"
}
check "TLS drop-in to a --tls off server: named on both sides; off works" \
    tls_to_plain_only

both_modes() {
    tls_convert "$PBOTH" "$WORK/in.miff" -blur 0x2 "$WORK/both-tls.miff"
    tls_convert "$PBOTH" -define cache:dpc-tls=off "$WORK/in.miff" -blur 0x2 \
        "$WORK/both-plain.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/both-tls.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/both-plain.miff"
    grep -q '(native, TLS): peer closed' "$WORK/both.log"
    grep -q '(native): peer closed' "$WORK/both.log"
}
check "--tls both: TLS and plaintext drop-ins side by side" both_modes

wrong_secret() {
    make_policy "not-$SECRET" "$WORK/etc-wrong" > /dev/null
    ! MAGICK_CONFIGURE_PATH=$WORK/etc-wrong tls_convert "$PORT" \
        "$WORK/in.miff" "$WORK/x.miff" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q 'authentication failed in the TLS handshake' "$WORK/err"
    grep -q 'authentication failed in the TLS handshake' "$WORK/server.log"
}
check "wrong secret: the TLS handshake fails, named on both sides" wrong_secret

# Certificates: a CA, the server's certificate for 127.0.0.1, a client's.
make_certs() {
    local d=$WORK/pki
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 2 -subj /CN=test-ca -keyout "$d/ca.key" -out "$d/ca.pem"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=127.0.0.1 -keyout "$d/server.key" -out "$d/server.csr"
    printf 'subjectAltName=IP:127.0.0.1\n' > "$d/san.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -extfile "$d/san.ext" -out "$d/server.pem"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj /CN=client -keyout "$d/client.key" -out "$d/client.csr"
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -out "$d/client.pem"
    # another CA, which signed nothing here
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 2 -subj /CN=other-ca -keyout "$d/other.key" -out "$d/other.pem"
}
check "test certificates" make_certs
PKI=$WORK/pki
extra_server PCERT cert --tls on --tls-cert "$PKI/server.pem" \
    --tls-key "$PKI/server.key" --tls-ca "$PKI/ca.pem"

certificates() {
    tls_convert "$PCERT" -define cache:dpc-tls-ca="$PKI/ca.pem" \
        -define cache:dpc-tls-cert="$PKI/client.pem" \
        -define cache:dpc-tls-key="$PKI/client.key" \
        "$WORK/in.miff" -blur 0x2 "$WORK/cert-blur.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/cert-blur.miff"
    # the PSK still works on the same server
    tls_convert "$PCERT" "$WORK/in.miff" -blur 0x2 "$WORK/cert-psk.miff"
    same_pixels "$WORK/mem-blur.miff" "$WORK/cert-psk.miff"
}
check "certificates: client verifies the server, server the client" certificates

wrong_ca() {
    ! tls_convert "$PCERT" -define cache:dpc-tls-ca="$PKI/other.pem" \
        "$WORK/in.miff" "$WORK/x.miff" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q "certificate failed verification.*cache:dpc-tls-ca" "$WORK/err"
}
check "a server certificate from another CA is refused, naming cache:dpc-tls-ca" wrong_ca

no_client_cert() {
    ! tls_convert "$PCERT" -define cache:dpc-tls-ca="$PKI/ca.pem" \
        "$WORK/in.miff" "$WORK/x.miff" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q "authentication failed" "$WORK/err"
    grep -q "authentication failed in the TLS handshake" "$WORK/cert.log"
}
check "no client certificate where --tls-ca asks for one: refused" no_client_cert

# A stock listener on an address beyond loopback gets a warning naming
# what an on-path attacker can do and the alternative; loopback does not.
# Inside a network namespace of the test's own, on a veth pair.
stock_warning() {
    if ! unshare -n true 2>/dev/null; then
        echo "  (no network namespaces: checked nothing)" >&2
        return 0
    fi
    unshare -n bash -c 'ip link set lo up &&
        ip link add dpcw0 type veth peer name dpcw1 &&
        ip addr add 10.213.77.1/24 dev dpcw0 && ip link set dpcw0 up &&
        ip link set dpcw1 up &&
        timeout 3 "$0" serve --listen 10.213.77.1:0 --listen 127.0.0.1:0 \
            --socket none > "$1" 2>&1; true' "$MAGICK_DPC" "$WORK/warn.log"
    cat "$WORK/warn.log"
    grep -q '10\.213\.77\.1:[0-9]* is reachable beyond this host: stock .*anyone on the path can read and alter .*cache:dpc-tls=on' \
        "$WORK/warn.log"
    ! grep -q '127\.0\.0\.1:[0-9]* is reachable beyond' "$WORK/warn.log"
}
check "a stock listener beyond loopback: warned, naming the risk and TLS" \
    stock_warning

check "servers alive" server_alive
check_stops
finish
