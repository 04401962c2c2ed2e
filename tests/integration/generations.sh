#!/usr/bin/env bash
# A client of the other ImageMagick generation on a listener: the server
# says which listener to use.  An ImageMagick 6 client on the IM7 listener
# answers only the first 8 bytes of the 16-byte nonce; an ImageMagick 7
# client on the IM6 listener waits for 16 bytes and sends nothing.  Both
# are refused (the client cannot be told), with a warning in the server's
# log naming the listener for it; the server goes on serving.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server --listen-im7 127.0.0.1:0
PORT7=$(im7_port_of "$WORK/server.log")
[ -n "$PORT7" ] || { echo "no IM7 listener:" >&2; cat "$WORK/server.log" >&2; exit 1; }

# py SCRIPT: python with tests/lib on the path and the policy's secret.
py() {
    timeout 30 /usr/bin/python3 -B -c "
import sys; sys.path.insert(0, '$TOP_SRCDIR/tests/lib')
import dpcproto as P
secret = P.read_secret('$WORK/etc')
$1"
}

# wait_log PATTERN: the server logged a warning matching PATTERN (5 s).
wait_log() {
    for _ in $(seq 50); do
        grep -q "\[warning\].*$1" "$WORK/server.log" && return 0
        sleep 0.1
    done
    echo "no warning matching '$1' in:" >&2
    cat "$WORK/server.log" >&2
    return 1
}

im6_on_im7() {
    py "
c = P.Client('127.0.0.1', $PORT7, P.IM7)
nonce = c.recv_exact(16)
c.send(P.proof(secret, nonce[:8]))       # what an IM6 client answers
c.send(b'o' + P.proof(secret, nonce[:8]) + P.open_im6(16, 16))
assert c.recv_until_close() == b'', 'IM6 proof accepted on the IM7 listener'
"
    wait_log "ImageMagick 6 client.*--listen"
}
check "an IM6 client on the IM7 listener: refused, the warning names the IM6 listener" im6_on_im7

im7_on_im6() {
    py "
c = P.Client('127.0.0.1', $PORT, P.IM6)
c.recv_exact(8)                          # an IM7 client wants 16: gives up
c.close()
"
    wait_log "ImageMagick 7 client.*--listen-im7"
}
check "an IM7 client on the IM6 listener: the warning names the IM7 listener" im7_on_im6

still_serving() {
    mem_convert -size 64x48 gradient: "$WORK/in.png"
    mem_convert "$WORK/in.png" -blur 0x1 "$WORK/mem.png"
    dpc_convert "$WORK/in.png" -blur 0x1 "$WORK/dpc.png"
    same_pixels "$WORK/mem.png" "$WORK/dpc.png"
    [ "$(json_field auth_failures)" -ge 1 ]
}
check "the server still serves, and counted the failed proof" still_serving
check_stops
finish
