# A small MQTT 3.1.1 client for the boards (the Pico W build has no umqtt) and the unix port. MicroPython.
# The socket is passed in, or made with socket.getaddrinfo/socket.socket.
#
#   c = MQTTClient("dev-1", "192.168.1.10", user="dev-1", password="s3cret", keepalive=60)
#   c.set_last_will("sensing/v1/dev-1/status", b"offline", retain=True)
#   c.connect()
#   c.publish("sensing/v1/dev-1/up", payload, qos=1)   # returns once the broker's PUBACK arrives
#   c.publish("sensing/v1/dev-1/up", write_batch, qos=1, size=n)  # n bytes, written by write_batch(write)
#   c.disconnect()
#
# Over TLS, the broker's certificate is checked against one CA certificate and the broker's name. Opening
# the connection (mqtt_connect.py) and the TLS handshake (mqtt_tls.py) are loaded for it and let go after:
#
#   c = MQTTClient("dev-1", "broker.example.org", 8883, ..., ca="/broker-ca.der")
#
# Every failure raises MQTTError with one sentence; the caller decides whether to retry.
#
# Memory: a board publishes every cycle for months. A packet's header is built in one small bytearray, a
# small payload copied after it (one TCP segment: no wait for Nagle), a large one written from its own bytes,
# or streamed by the caller (a batch of readings read from flash record by record), never joined.

import time

try:
    from .buffer import load, release
except ImportError:  # copied flat onto a board
    from buffer import load, release

# CONNACK return codes 1 to 5.
REFUSED = ("the broker does not accept MQTT 3.1.1", "the broker rejected the client id", "the broker is unavailable",
           "bad username or password", "not authorised")
SMALL_PAYLOAD = 512


class MQTTError(OSError):
    pass


class MQTTRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code (see REFUSED)."""

    def __init__(self, code):
        super().__init__("the broker refused the connection: %s (return code %d)"
                         % (REFUSED[code - 1] if 0 < code <= len(REFUSED) else "unknown reason", code))
        self.code = code


class MQTTTimeout(MQTTError):
    pass


def ticks_ms():
    return time.ticks_ms()


def elapsed_ms(start):
    return time.ticks_diff(time.ticks_ms(), start)


def _utf8(s):
    if isinstance(s, str):
        s = s.encode()
    return len(s).to_bytes(2, "big") + s


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60,
                 clean_session=True, timeout=5.0, ca=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.timeout = timeout
        self.will = None
        self.ca = ca         # the CA certificate's path: over TLS, checked against it; None: plain MQTT
        self.sock = None     # what packets go through: the socket, or the TLS stream over it
        self.timed = None    # what takes the timeouts: MicroPython's TLS stream has no settimeout
        self.pid = 0
        self.on_message = None  # on_message(topic: str, payload: bytes) for subscribed topics

    def set_last_will(self, topic, message, retain=False, qos=0):
        self.will = (topic, message, retain, qos)

    # --- connection ---------------------------------------------------------------------------------
    def connect(self, sock=None):
        """Open the connection (with `sock` if given, already connected), over TLS when given a CA,
        and wait for CONNACK. Returns True when the broker resumed a stored session. (The work is
        mqtt_connect.py's: loaded for it, and let go afterwards.)"""
        opening = load("mqtt_connect")
        try:
            return opening.connect(self, sock)
        finally:
            release(opening)

    def _open_socket(self):
        """A socket connected to the broker (a test or the bench puts its own in its place)."""
        return load("mqtt_connect").open_socket(self)

    def disconnect(self):
        if self.sock is not None:
            try:
                self._send(0xE0, b"")
            except OSError:
                pass
        self.close()

    def close(self):
        for sock in (self.sock, self.timed):  # the TLS stream, then the socket under it
            if sock is not None and (sock is self.sock or self.timed is not self.sock):
                try:
                    sock.close()
                except OSError:
                    pass
        self.sock = self.timed = None

    # --- messages -----------------------------------------------------------------------------------
    def publish(self, topic, payload, qos=0, retain=False, size=-1):
        """Publish; for QoS 1 wait until the broker acknowledges it (MQTTTimeout after `timeout` s).
        `payload` is bytes; or, with `size`, a function that writes the payload's `size` bytes through the
        write() it is given (one call or many), so a large message is never whole in the heap."""
        if isinstance(payload, str):
            payload = payload.encode()
        head = _utf8(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            head += pid.to_bytes(2, "big")
        self._send(0x30 | (qos << 1) | (1 if retain else 0), head, payload, size)
        if qos:
            self._wait_for(0x40, pid, "PUBACK")
        return pid

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        self._send(0x82, pid.to_bytes(2, "big") + _utf8(topic) + bytes((qos,)))
        body = self._wait_for(0x90, pid, "SUBACK")
        if body[2] == 0x80:
            raise MQTTError("the broker refused the subscription to %s" % topic)
        return body[2]

    def check_msg(self):
        """Handle one packet if one is waiting (a subscribed message goes to on_message). Non-blocking."""
        self.timed.settimeout(0)
        try:
            first = self.sock.recv(1)
        except OSError:
            return None  # nothing waiting
        finally:
            self.timed.settimeout(self.timeout)
        if first is None:  # MicroPython's TLS stream: nothing waiting
            return None
        if not first:
            raise MQTTError("the broker closed the connection")
        kind, body = self._read_packet(first[0])
        self._handle(kind, body)
        return kind

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    # --- wire ---------------------------------------------------------------------------------------
    def _send(self, kind, body, payload=b"", size=-1):
        """Send one packet: `kind`, the remaining length, `body`, then the payload: bytes, copied after the
        rest when small, or a function writing `size` bytes through write()."""
        if self.sock is None:
            raise MQTTError("not connected to the broker")
        stream = size >= 0
        if not stream:
            size = len(payload)
        n = len(body) + size
        copied = size if size <= SMALL_PAYLOAD else 0
        head = bytearray(2 + (n > 0x7F) + (n > 0x3FFF) + (n > 0x1FFFFF) + len(body) + copied)
        head[0] = kind
        i = 1
        while n > 0x7F:
            head[i] = (n & 0x7F) | 0x80
            n >>= 7
            i += 1
        head[i] = n
        i += 1 + len(body)
        head[i - len(body):i] = body
        try:
            if copied and stream:  # a small batch: its pieces go after the header, into one segment
                def put(piece):
                    nonlocal i
                    head[i:i + len(piece)] = piece
                    i += len(piece)
                payload(put)
            elif copied:
                head[i:] = payload
            self._write(head)
            if stream and not copied:
                payload(self._write)
            elif size and not copied:
                self._write(payload)
        except OSError as e:
            self.close()
            raise MQTTError("lost the connection to the broker while sending: %s" % e)

    def _write(self, data):
        sent = 0
        while sent < len(data):
            n = self.sock.send(memoryview(data)[sent:] if sent else data)
            if not n:
                raise OSError("connection closed")
            sent += n

    def _recv_exact(self, n):
        data = None
        while data is None or len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data) if data else n)
            except OSError as e:
                self.close()
                code = e.args[0] if e.args else None
                # CPython raises TimeoutError; MicroPython OSError(ETIMEDOUT or EAGAIN).
                if code in (11, 110, 116) or "timed out" in str(e):
                    raise MQTTTimeout("the broker sent nothing for %s s" % self.timeout)
                raise MQTTError("lost the connection to the broker: %s" % e)
            if not chunk:
                self.close()
                raise MQTTError("the broker closed the connection")
            data = chunk if data is None else data + chunk
        return data

    def _read_packet(self, kind=-1):
        if self.sock is None:
            raise MQTTError("not connected to the broker")
        if kind < 0:
            kind = self._recv_exact(1)[0]
        length = 0
        shift = 0
        while True:
            byte = self._recv_exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 21:
                raise MQTTError("the broker sent a malformed packet length")
        return kind, self._recv_exact(length) if length else b""

    def _wait_for(self, kind, pid, name):
        start = ticks_ms()
        while elapsed_ms(start) < self.timeout * 1000:
            got, body = self._read_packet()
            if got == kind and len(body) > 1 and (body[0] << 8) | body[1] == pid:
                return body
            self._handle(got, body)
        self.close()
        raise MQTTTimeout("no %s from the broker within %s s" % (name, self.timeout))

    def _handle(self, kind, body):
        # Packets that arrive while we wait for something else: a message on a subscribed topic.
        if kind & 0xF0 != 0x30:
            return
        qos = (kind >> 1) & 3
        pos = 2 + ((body[0] << 8) | body[1])
        topic = body[2:pos].decode()
        if qos:
            pid = body[pos:pos + 2]
            pos += 2
            if qos == 1:
                self._send(0x40, pid)
        if self.on_message:
            self.on_message(topic, body[pos:])
