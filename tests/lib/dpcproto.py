"""A small, independent client for ImageMagick's stock distributed pixel
cache protocol (handshake generation C), for black-box tests of magick-dpc.

Standard library only.  Written from the protocol description, not from the
server's C code, so that a bug shared by both cannot hide: SipHash-2-4 and
the secret-to-key derivation are implemented here from scratch and checked
against published and captured vectors (selftest()).

Wire summary (x86_64, little-endian, no padding):
  server -> nonce (8 bytes IM6 listener, 16 bytes IM7 listener)
  client -> 8 bytes LE SipHash-2-4(K(secret), nonce); wrong: silent close
  command = 1 byte + 8-byte session key + payload
    'o' open   IM6 32 bytes / IM7 1072 bytes        -> u32 status (1 ok)
    'w'/'W'    40-byte region + length bytes        -> nothing
    'r'/'R'    40-byte region                       -> length bytes
    'd'        -                                    -> u32 status, close
    's'        - (magick-dpc extension)             -> u32 len + JSON
  failure: 4 zero bytes, then close
"""

import json
import socket
import struct
import time
import xml.etree.ElementTree as ET

MASK64 = (1 << 64) - 1

IM6 = "im6"
IM7 = "im7"
NONCE_LEN = {IM6: 8, IM7: 16}

DIRECT_CLASS = 1
PSEUDO_CLASS = 2
SRGB = 13
CMYK = 12

FAIL_REPLY = b"\0\0\0\0"


# --------------------------------------------------------------------------
# SipHash-2-4 and the key derivation


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK64


def siphash24(key, msg):
    """SipHash-2-4 of bytes msg under a 16-byte key; returns an int."""
    if len(key) != 16:
        raise ValueError("SipHash key must be 16 bytes")
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rnd():
        v[0] = (v[0] + v[1]) & MASK64
        v[1] = _rotl(v[1], 13) ^ v[0]
        v[0] = _rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & MASK64
        v[3] = _rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & MASK64
        v[3] = _rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & MASK64
        v[1] = _rotl(v[1], 17) ^ v[2]
        v[2] = _rotl(v[2], 32)

    n = len(msg)
    whole = n - n % 8
    for i in range(0, whole, 8):
        m = struct.unpack_from("<Q", msg, i)[0]
        v[3] ^= m
        rnd()
        rnd()
        v[0] ^= m
    last = (n & 0xFF) << 56
    for j, byte in enumerate(msg[whole:]):
        last |= byte << (8 * j)
    v[3] ^= last
    rnd()
    rnd()
    v[0] ^= last
    v[2] ^= 0xFF
    for _ in range(4):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def key_from_secret(secret):
    """ImageMagick's DeriveSipKeyFromSecret: 16 key bytes from the secret."""
    if isinstance(secret, str):
        secret = secret.encode()
    k0, k1 = 0x0706050403020100, 0x0F0E0D0C0B0A0908
    for i, b in enumerate(secret):
        k0 ^= b
        k0 = (k0 * 0x100000001B3) & MASK64
        k1 ^= b << ((i & 7) * 8)
        k1 = _rotl(k1, 5)
    return struct.pack("<QQ", k0, k1)


def proof(secret, nonce):
    """The 8 bytes a client answers a nonce with (also the session key)."""
    return struct.pack("<Q", siphash24(key_from_secret(secret), nonce))


def selftest():
    """Raises AssertionError unless both reference vectors match."""
    key = bytes(range(16))
    got = siphash24(key, bytes(range(15)))
    assert got == 0xA129CA6149BE45E5, "SipHash vector: %#x" % got
    # The SipHash paper's 64 vectors start with the empty message.
    got = siphash24(key, b"")
    assert got == 0x726FDB47DD0E0E31, "SipHash empty vector: %#x" % got
    got = proof("magick-dpc test vector", bytes(range(8)))
    want = bytes.fromhex("87df2c04c228e84c")
    assert got == want, "ImageMagick vector: %s" % got.hex()


# --------------------------------------------------------------------------
# policy.xml


def read_secret(policy_dir):
    """The cache:shared-secret value of policy_dir/policy.xml."""
    tree = ET.parse("%s/policy.xml" % policy_dir)
    for p in tree.iter("policy"):
        if p.get("domain") == "cache" and p.get("name") == "shared-secret":
            return p.get("value")
    raise ValueError("no shared-secret in %s/policy.xml" % policy_dir)


# --------------------------------------------------------------------------
# payload encoders


def open_im6(columns, rows, storage_class=DIRECT_CLASS, colorspace=SRGB,
             channels=0):
    return struct.pack("<IIQQQ", storage_class & 0xFFFFFFFF,
                       colorspace & 0xFFFFFFFF, channels & MASK64,
                       columns & MASK64, rows & MASK64)


def open_im7(columns, rows, number_channels=3, metacontent_extent=0,
             storage_class=DIRECT_CLASS, colorspace=SRGB, alpha_trait=0,
             channels=0):
    head = struct.pack("<iiiiQQQ", storage_class, colorspace, alpha_trait,
                       channels, columns & MASK64, rows & MASK64,
                       number_channels & MASK64)
    cmap = b"".join(struct.pack("<iiq", i, i if i < number_channels else 0,
                                i if i < number_channels else 0)
                    for i in range(64))
    payload = head + cmap + struct.pack("<Q", metacontent_extent & MASK64)
    assert len(payload) == 1072
    return payload


def region(width, height, x, y, length):
    """The 40-byte region; x and y wrap like the C int64 they are."""
    return struct.pack("<QQQQQ", width & MASK64, height & MASK64, x & MASK64,
                       y & MASK64, length & MASK64)


# --------------------------------------------------------------------------
# the client


class ProtocolError(Exception):
    pass


class Closed(ProtocolError):
    """The server closed (or reset) the connection."""


class Client:
    """One connection.  connect() reads the nonce; auth() answers it."""

    def __init__(self, host, port, flavor=IM6, timeout=5.0, source=None):
        """source: the local address to connect from (any of 127.0.0.0/8
        reaches a loopback server), for tests of per-source limits."""
        self.flavor = flavor
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.nonce = None
        self.key = None

    # raw I/O ---------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("connection closed after %d of %d bytes"
                             % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv_until_close(self, limit=1 << 16, timeout=None):
        """Everything until EOF (or reset); raises socket.timeout if the
        server neither sends nor closes in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        buf = bytearray()
        while len(buf) <= limit:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no close after %d bytes" % len(buf))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
        self.sock.settimeout(self.timeout)
        return bytes(buf)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # protocol --------------------------------------------------------------
    def read_nonce(self):
        self.nonce = self.recv_exact(NONCE_LEN[self.flavor])
        return self.nonce

    def auth(self, secret):
        if self.nonce is None:
            self.read_nonce()
        self.key = proof(secret, self.nonce)
        self.send(self.key)
        return self

    def header(self, cmd, key=None):
        if isinstance(cmd, str):
            cmd = cmd.encode()
        return cmd + (self.key if key is None else key)

    def status_word(self):
        return struct.unpack("<I", self.recv_exact(4))[0]

    def open(self, payload):
        self.send(self.header("o") + payload)
        return self.status_word()

    def open6(self, columns, rows, **kw):
        return self.open(open_im6(columns, rows, **kw))

    def open7(self, columns, rows, **kw):
        return self.open(open_im7(columns, rows, **kw))

    def write(self, cmd, width, height, x, y, data):
        self.send(self.header(cmd) + region(width, height, x, y, len(data))
                  + data)

    def read(self, cmd, width, height, x, y, length):
        self.send(self.header(cmd) + region(width, height, x, y, length))
        return self.recv_exact(length)

    def destroy(self):
        self.send(self.header("d"))
        return self.status_word()

    def status(self):
        self.send(self.header("s"))
        n = struct.unpack("<I", self.recv_exact(4))[0]
        return json.loads(self.recv_exact(n).decode())


def connect(host, port, secret, flavor=IM6, timeout=5.0, source=None):
    """An authenticated client."""
    c = Client(host, port, flavor, timeout, source)
    try:
        c.auth(secret)
    except Exception:
        c.close()
        raise
    return c


def server_status(host, port, secret, flavor=IM6, timeout=5.0):
    with connect(host, port, secret, flavor, timeout) as c:
        return c.status()


if __name__ == "__main__":
    selftest()
    print("dpcproto self-test ok")
