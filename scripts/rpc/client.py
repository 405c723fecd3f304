"""JSON-RPC 2.0 client for ustord's UNIX socket (Python standard library only).

The server ends every response with a newline and never puts a raw newline
inside one, so a response is complete at the first newline; if the server
closes the connection first, whatever arrived is parsed as it is.
"""

import json
import socket
import sys
import time


class RPCConnectionError(Exception):
    """The server could not be reached, hung up, or sent something unreadable."""


class JSONRPCError(Exception):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, method, code, message, data=None):
        super().__init__("%s: error %s: %s" % (method, code, message))
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class JSONRPCClient:
    """One connection; call() sends a request and waits for its response."""

    def __init__(self, path, timeout=60.0, verbose=False, log=sys.stderr):
        self.path = path
        self.timeout = timeout
        self.verbose = verbose
        self.log = log
        self._sock = None
        self._buf = b""
        self._next_id = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self):
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise RPCConnectionError(
                "cannot connect to %s: %s (is ustord running? -s selects the socket)"
                % (self.path, e.strerror or e)) from None
        self._sock = sock

    def _read_response(self, method):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RPCConnectionError("no response to %s within %g s" % (method, self.timeout))
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                raise RPCConnectionError("reading the response to %s: %s" % (method, e)) from None
            if not chunk:
                if not self._buf.strip():
                    raise RPCConnectionError("the server closed the connection without "
                                             "answering %s" % method)
                break
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise RPCConnectionError("unreadable response to %s: %s" % (method, e)) from None

    def call(self, method, params=None):
        """Call method with params (a dict or None); return the result or raise."""
        self._connect()
        req_id = self._next_id
        self._next_id += 1
        request = {"jsonrpc": "2.0", "method": method, "id": req_id}
        if params is not None:
            request["params"] = params
        if self.verbose:
            print("request:\n" + json.dumps(request, indent=2), file=self.log)
        try:
            self._sock.sendall(json.dumps(request).encode("utf-8"))
        except OSError as e:
            raise RPCConnectionError("sending %s: %s" % (method, e)) from None
        response = self._read_response(method)
        if self.verbose:
            print("response:\n" + json.dumps(response, indent=2), file=self.log)
        if not isinstance(response, dict):
            raise RPCConnectionError("response to %s is not a JSON object" % method)
        error = response.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"code": None, "message": str(error)}
            raise JSONRPCError(method, error.get("code"), error.get("message"), error.get("data"))
        if response.get("id") != req_id:
            raise RPCConnectionError("response to %s carries id %r, expected %r"
                                     % (method, response.get("id"), req_id))
        if "result" not in response:
            raise RPCConnectionError("response to %s has neither result nor error" % method)
        return response["result"]
