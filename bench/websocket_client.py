"""A minimal WebSocket client (RFC 6455) on asyncio streams: the opening
handshake, masked client frames, text messages (fragmented ones joined),
ping and pong, and the closing handshake. Enough for the agent side of the
result channel (docs/protocol.md 2); no extensions, no TLS.
"""

import asyncio
import base64
import hashlib
import os
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
LARGEST_MESSAGE = 16 << 20  # far above the hub's 1 MiB (docs/protocol.md 2.1)


class WebSocketError(Exception):
    """The handshake was refused, or the peer broke the framing rules."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class WebSocketClosed(Exception):
    """The channel is closed: by a close frame (code and reason), or the
    connection ended without one (code 1006)."""

    def __init__(self, code, reason=""):
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


def mask(payload, key):
    """payload XOR the 4-byte key repeated (RFC 6455 5.3), in one big-integer
    operation rather than a Python loop per byte."""
    if not payload:
        return payload
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload):
    """One final client frame: FIN set, masked with a fresh key (5.2, 5.3)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(payload, key)


class WebSocket:
    """One client connection. send_* write a whole frame in one write() so
    concurrent senders never interleave; receive() must have one caller."""

    def __init__(self, reader, writer, subprotocol):
        self.reader = reader
        self.writer = writer
        self.subprotocol = subprotocol
        self.close_sent = False
        self.on_pong = None  # called with the payload of each pong

    @classmethod
    async def connect(cls, host, port, path, headers=None, subprotocol="tether.v1",
                      timeout_s=10, local_address=None):
        """A connection from local_address (None: the kernel's choice)."""
        local_addr = (local_address, 0) if local_address else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local_addr), timeout_s)
        try:
            accepted = await asyncio.wait_for(
                cls._handshake(reader, writer, host, port, path, headers, subprotocol),
                timeout_s)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, accepted)

    @staticmethod
    async def _handshake(reader, writer, host, port, path, headers, subprotocol):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        fields = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        if status != 101:
            raise WebSocketError(f"handshake refused: {status_line}", status)
        expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if fields.get("upgrade", "").lower() != "websocket" or \
                "upgrade" not in fields.get("connection", "").lower():
            raise WebSocketError("handshake: 101 without Upgrade: websocket", status)
        if fields.get("sec-websocket-accept") != expected:
            raise WebSocketError("handshake: wrong Sec-WebSocket-Accept", status)
        accepted = fields.get("sec-websocket-protocol")
        if accepted is not None and accepted != subprotocol:
            raise WebSocketError(f"handshake: subprotocol {accepted!r} was not offered", status)
        return accepted

    def _write(self, opcode, payload):
        if self.writer.is_closing():
            raise WebSocketClosed(1006, "connection gone")
        self.writer.write(encode_frame(opcode, payload))

    async def send_text(self, text):
        self._write(OP_TEXT, text.encode())
        await self.writer.drain()

    async def ping(self, payload=b""):
        self._write(OP_PING, payload)
        await self.writer.drain()

    async def close(self, code=1000, reason=""):
        """Sends a close frame (once) and closes the connection; what the peer
        answers is not awaited beyond a short moment."""
        if not self.close_sent and not self.writer.is_closing():
            self.close_sent = True
            try:
                self._write(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
                await asyncio.wait_for(self.writer.drain(), 1)
            except (OSError, asyncio.TimeoutError, WebSocketClosed):
                pass
        self.writer.close()

    async def _read_frame(self):
        first, second = await self.reader.readexactly(2)
        fin, opcode, masked, n = first & 0x80, first & 0x0F, second & 0x80, second & 0x7F
        if first & 0x70:
            raise WebSocketError("frame with RSV bits set (no extension was negotiated)")
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        if n > LARGEST_MESSAGE:
            raise WebSocketError(f"frame of {n} bytes")
        key = await self.reader.readexactly(4) if masked else None
        payload = await self.reader.readexactly(n)
        return bool(fin), opcode, mask(payload, key) if key else payload

    async def receive(self):
        """The next text message, as str. Pings are answered, pongs reported
        to on_pong; a close frame is answered and raised as WebSocketClosed, as
        is the connection's end; a binary message closes with 1003."""
        parts = []
        while True:
            try:
                fin, opcode, payload = await self._read_frame()
            except (asyncio.IncompleteReadError, OSError) as error:
                self.writer.close()
                raise WebSocketClosed(1006, repr(error)) from error
            except WebSocketError as error:
                await self.close(1002, str(error))
                raise WebSocketClosed(1002, str(error)) from error
            if opcode == OP_PING:
                self._write(OP_PONG, payload)
            elif opcode == OP_PONG:
                if self.on_pong is not None:
                    self.on_pong(payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                await self.close(code if code not in (1005, 1006) else 1000)
                raise WebSocketClosed(code, payload[2:].decode("utf-8", "replace"))
            elif opcode in (OP_TEXT, OP_CONTINUATION):
                if (opcode == OP_TEXT) == bool(parts):
                    await self.close(1002, "unexpected continuation or text frame")
                    raise WebSocketClosed(1002, "fragmentation broken")
                parts.append(payload)
                if fin:
                    try:
                        return b"".join(parts).decode("utf-8")
                    except UnicodeDecodeError as error:
                        await self.close(1007, "text message not UTF-8")
                        raise WebSocketClosed(1007, "text message not UTF-8") from error
            else:
                await self.close(1003, "only text messages")
                raise WebSocketClosed(1003, f"opcode {opcode}")
