# SPDX-License-Identifier: Apache-2.0
"""A tiny WebSocket echo backend for the tests (RFC 6455 by hand, standard library only).

    with WsEcho() as ws:                 # 127.0.0.1, a free port, a thread per connection
        ws.port
        ws.requests                      # every upgrade request: {"path": ..., "headers": {...}}

The server answers an upgrade with 101, sends one text message holding the upgrade request's path
and headers as JSON (what a backend behind the proxy saw), then echoes every text message until
the client closes. WsClient is the matching client: ws_connect(host, port, path, headers, tls_ca).
"""
import base64
import hashlib
import json
import os
import socket
import socketserver
import ssl
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_head(sock):
    """Bytes up to the blank line of an HTTP message head (bounded), and what came after."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk or len(buf) > 65536:
            raise ConnectionError("connection closed before the head ended: %r" % buf[:200])
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, rest


class Framed:
    """Frames over a socket: send (masked when mask=True, as a client must) and receive."""

    def __init__(self, sock, rest=b"", mask=False):
        self.sock, self.buf, self.mask = sock, rest, mask

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload bytes) of the next frame."""
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._need(8))[0]
        key = self._need(4) if b1 & 0x80 else None
        data = self._need(n)
        if key:
            data = bytes(c ^ key[i % 4] for i, c in enumerate(data))
        return b0 & 0x0F, data

    def send(self, opcode, data):
        head = bytes([0x80 | opcode])
        n = len(data)
        bit = 0x80 if self.mask else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([bit | 127]) + struct.pack(">Q", n)
        if self.mask:
            key = os.urandom(4)
            head += key
            data = bytes(c ^ key[i % 4] for i, c in enumerate(data))
        self.sock.sendall(head + data)

    def send_text(self, text):
        self.send(0x1, text.encode())

    def recv_text(self):
        op, data = self.recv()
        if op != 0x1:
            raise ConnectionError("expected a text frame, got opcode %d" % op)
        return data.decode()

    def close(self):
        try:
            self.send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(30)
        try:
            line, headers, rest = read_head(self.request)
        except (ConnectionError, OSError):
            return
        path = line.split(" ")[1] if line.count(" ") >= 2 else ""
        self.server.owner.requests.append({"path": path, "headers": headers})
        if headers.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in headers:
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            return
        self.request.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                              % accept_key(headers["sec-websocket-key"])).encode())
        f = Framed(self.request, rest)
        f.send_text(json.dumps({"path": path, "headers": headers}))
        try:
            while True:
                op, data = f.recv()
                if op == 0x8:
                    f.send(0x8, data[:2])
                    return
                if op == 0x9:
                    f.send(0xA, data)
                elif op in (0x1, 0x2):
                    f.send(op, data)
        except (ConnectionError, OSError):
            return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class WsEcho:
    def __init__(self):
        self.requests = []
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def ws_connect(port, path, host, headers=None, tls_ca=None, timeout=15):
    """An upgrade request to 127.0.0.1:port (Host: host). Returns (status, response headers,
    Framed or None). tls_ca: https with that CA, for certificates naming localhost."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls_ca:
        ctx = ssl.create_default_context(cafile=tls_ca)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    line, resp, rest = read_head(sock)
    status = int(line.split(" ")[1])
    if status != 101:
        sock.close()
        return status, resp, None
    assert resp.get("sec-websocket-accept") == accept_key(key), resp
    return status, resp, Framed(sock, rest, mask=True)
