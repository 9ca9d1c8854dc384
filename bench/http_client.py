"""A minimal HTTP/1.1 client on asyncio streams: one kept-alive connection,
one request at a time (what an agent's long poll and a registration loop
need). Python's standard library has no asyncio HTTP client, and a thread
per connection would not carry a thousand simulated agents.

Bodies are read by Content-Length, chunked transfer coding, or to the
connection's end; every wait has a deadline.
"""

import asyncio


class HttpError(Exception):
    """The connection failed or the answer could not be read. kind says how:
    "connect" (no connection), "closed" (the request was written, and the
    connection ended before a whole answer), "timeout" (no whole answer in
    time), "protocol" (not HTTP)."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


def failure_kind(error):
    """The HttpError kind of what _exchange raised once the request was sent."""
    if isinstance(error, HttpError):
        return error.kind
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    return "closed"  # OSError (reset, broken pipe), IncompleteReadError (EOF)


class HttpConnection:
    """One kept-alive connection to host:port, opened on first use and again
    after the server closes it."""

    def __init__(self, host, port, local_address=None):
        self.host = host
        self.port = port
        # The source address of the connections (None: the kernel's choice);
        # loopback answers on all of 127/8, so a fleet can spread over
        # several sources, as many hosts would.
        self.local_addr = (local_address, 0) if local_address else None
        self.reader = None
        self.writer = None

    async def request(self, method, path, headers=None, body=None, timeout_s=30, resend=True):
        """(status, headers with lower-case names, body bytes). With resend, a
        request on a reused connection that the server had closed meanwhile
        is sent once more on a new one (the keep-alive race); without it (a
        long poll, whose closing unanswered is what is counted), and for any
        other failure, HttpError with its kind."""
        reused = self.writer is not None
        try:
            return await self._bounded(method, path, headers, body, timeout_s)
        except HttpError as error:
            if not (resend and reused and error.kind == "closed"):
                raise
        return await self._bounded(method, path, headers, body, timeout_s)

    async def _bounded(self, method, path, headers, body, timeout_s):
        try:
            await asyncio.wait_for(self._connect(), timeout_s)
        except (OSError, asyncio.TimeoutError) as error:
            self.close()
            raise HttpError(f"{method} {path}: connecting: {error!r}", "connect") from error
        try:
            return await asyncio.wait_for(self._exchange(method, path, headers, body), timeout_s)
        except (OSError, asyncio.IncompleteReadError, HttpError, asyncio.TimeoutError) as error:
            self.close()
            kind = failure_kind(error)
            detail = f"no answer within {timeout_s} s" if kind == "timeout" else repr(error)
            raise HttpError(f"{method} {path}: {detail}", kind) from error
        except asyncio.CancelledError:
            self.close()  # a request cut off midway leaves the connection unusable
            raise

    async def _connect(self):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, local_addr=self.local_addr)

    async def _exchange(self, method, path, headers, body):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await self.writer.drain()
        status, answer_headers = await self._read_head()
        payload = await self._read_body(method, status, answer_headers)
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        return status, answer_headers, payload

    async def _read_head(self):
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP status line: {status_line!r}", "protocol")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _read_body(self, method, status, headers):
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        payload = await self.reader.read()
        self.close()
        return payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = None
        self.writer = None
