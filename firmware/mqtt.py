# A small MQTT 3.1.1 client for the boards (the Pico W build has no umqtt) and the unix port.
# MicroPython common subset. The socket is passed in, or made with socket.getaddrinfo/socket.socket.
#
#   c = MQTTClient("dev-1", "192.168.1.10", user="dev-1", password="s3cret", keepalive=60)
#   c.set_last_will("sensing/v1/dev-1/status", b"offline", retain=True)
#   c.connect()
#   c.publish("sensing/v1/dev-1/up", payload, qos=1)   # returns once the broker's PUBACK arrives
#   c.disconnect()
#
# Over TLS, the broker's certificate is checked against one CA certificate and the broker's name:
#
#   c = MQTTClient("dev-1", "broker.example.org", 8883, ..., ca="/broker-ca.der")
#
# Every failure raises MQTTError with one sentence; the caller decides whether to retry.

import struct
import time

CONNACK_MEANINGS = {
    1: "the broker does not accept MQTT 3.1.1",
    2: "the broker rejected the client id",
    3: "the broker is unavailable",
    4: "bad username or password",
    5: "not authorised",
}


# A payload up to this size is sent in one piece with its packet's header (one TCP segment, no wait for
# Nagle); a larger one (a batch of readings) is sent from its own bytes, so it is never copied.
SMALL_PAYLOAD = 512


class MQTTError(OSError):
    pass


class MQTTRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code (see CONNACK_MEANINGS)."""

    def __init__(self, code):
        super().__init__("the broker refused the connection: %s (return code %d)"
                         % (CONNACK_MEANINGS.get(code, "unknown reason"), code))
        self.code = code


class MQTTTimeout(MQTTError):
    pass


class MQTTUntrusted(MQTTError):
    """The broker's certificate failed the check: not signed by our CA, not for the broker's name, expired."""


# mbedTLS's words for why a certificate failed (its verify text, one line a reason), and ours.
UNTRUSTED_BECAUSE = (
    ("not correctly signed by the trusted CA", "is not signed by the CA in %(ca)s"),
    ("does not match with the expected CN", "is not for %(host)s"),
    ("validity has expired", "has expired"),
    ("validity starts in the future", "is not valid yet by the board's clock"),
)


def pem_to_der(data):
    """The first certificate of a PEM file as DER; other bytes are taken to be DER already. MicroPython's
    mbedTLS takes only DER in some builds, and one certificate at a time."""
    begin = data.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0:
        return data
    end = data.find(b"-----END CERTIFICATE-----", begin)
    if end < 0:
        return b""
    import binascii
    try:
        return binascii.a2b_base64(data[begin + 27:end].replace(b"\r", b"").replace(b"\n", b""))
    except ValueError:
        return b""


def tls_context(ca_path):
    """A TLS context that trusts only the CA certificate in the file at `ca_path` (PEM or DER) and requires
    the broker to show a certificate it signed. Raises MQTTError with one sentence."""
    try:
        f = open(ca_path, "rb")
        try:
            der = pem_to_der(f.read())
        finally:
            f.close()
    except OSError as e:
        raise MQTTError("cannot read the broker's CA certificate %s: %s" % (ca_path, e))
    try:
        # MicroPython's own module (ssl.py wraps it, and is frozen: missing when MICROPYPATH leaves out .frozen)
        import tls
        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        context.verify_mode = tls.CERT_REQUIRED
        load = context.load_verify_locations  # takes the DER bytes
    except ImportError:  # CPython, or MicroPython before 1.23
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.verify_mode = ssl.CERT_REQUIRED  # MicroPython's ssl.py makes a client context CERT_NONE

        def load(der):
            context.load_verify_locations(cadata=der)
    try:
        load(der)
    except (ValueError, OSError):
        raise MQTTError("%s is not a CA certificate (PEM or DER)" % ca_path)
    return context


def ticks_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def elapsed_ms(start):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(time.ticks_ms(), start)
    return ticks_ms() - start


def _utf8(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">H", len(s)) + s


def _remaining_length(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


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
        and wait for CONNACK. Returns True when the broker resumed a stored session."""
        if sock is None:
            sock = self._open_socket()
        self.sock = self.timed = sock
        try:
            sock.settimeout(self.timeout)
            if self.ca is not None:
                self.sock = self._handshake(sock)
                if hasattr(self.sock, "settimeout"):  # CPython's TLS socket replaces the one it wraps
                    self.timed = self.sock
            self._send(0x10, self._connect_body())
            kind, body = self._connack()
            if kind != 0x20 or len(body) != 2:
                raise MQTTError("the broker answered CONNECT with packet type %d, not CONNACK" % (kind >> 4))
            if body[1] != 0:
                raise MQTTRefused(body[1])
            return bool(body[0] & 1)
        except Exception:
            self.close()
            raise

    def _connack(self):
        try:
            return self._read_packet()
        except MQTTTimeout:
            raise
        except MQTTError as e:
            if self.ca is not None:
                raise
            # What a TLS listener does to a plain CONNECT: hang up.
            why = str(e).split(": ", 1)
            raise MQTTError("the broker closed the connection without answering CONNECT%s: if %d is a TLS "
                            "port, set broker_tls" % (" (%s)" % why[1] if len(why) > 1 else "", self.port))

    def _handshake(self, sock):
        tls = tls_context(self.ca)  # read at each connect: a board's heap does not keep it in between
        try:
            return tls.wrap_socket(sock, server_hostname=self.host)
        except ValueError as e:  # MicroPython: the certificate failed; its text says why, a line a reason
            raise MQTTUntrusted("the broker's certificate %s" % self._why_untrusted(str(e)))
        except OSError as e:
            if getattr(e, "verify_message", None):  # CPython's ssl.SSLCertVerificationError
                raise MQTTUntrusted("the broker's certificate failed the check: %s" % e.verify_message)
            raise MQTTError("the TLS handshake with the broker at %s:%d failed (%s): is it a TLS port?"
                            % (self.host, self.port, e))

    def _why_untrusted(self, text):
        for words, ours in UNTRUSTED_BECAUSE:
            if words in text:
                return ours % {"ca": self.ca, "host": self.host}
        reason = text.strip().split("\n")[0].rstrip(".") or "no reason given"
        return "failed the check (%s)" % reason

    def _open_socket(self):
        import socket
        try:
            addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        except OSError as e:
            raise MQTTError("cannot resolve the broker address %s: %s" % (self.host, e))
        sock = socket.socket()
        sock.settimeout(self.timeout)
        try:
            sock.connect(addr)
        except OSError as e:
            sock.close()
            raise MQTTError("cannot reach the broker at %s:%d: %s" % (self.host, self.port, e))
        return sock

    def _connect_body(self):
        flags = 0x02 if self.clean_session else 0
        payload = _utf8(self.client_id)
        if self.will:
            topic, message, retain, qos = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _utf8(topic) + _utf8(message)
        if self.user is not None:
            flags |= 0x80
            payload += _utf8(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _utf8(self.password)
        return _utf8("MQTT") + struct.pack(">BBH", 4, flags, self.keepalive) + payload

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
    def publish(self, topic, payload, qos=0, retain=False):
        """Publish; for QoS 1 wait until the broker acknowledges it (MQTTTimeout after `timeout` s).
        `payload` is bytes, or a list of bytes sent one after the other as one message, never joined."""
        if isinstance(payload, str):
            payload = payload.encode()
        parts = payload if isinstance(payload, (list, tuple)) else (payload,)
        size = 0
        for part in parts:
            size += len(part)
        head = _utf8(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            head += struct.pack(">H", pid)
        self._send(0x30 | (qos << 1) | (1 if retain else 0), head, parts, size)
        if qos:
            self._wait_for(0x40, pid, "PUBACK")
        return pid

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        self._send(0x82, struct.pack(">H", pid) + _utf8(topic) + bytes([qos]))
        body = self._wait_for(0x90, pid, "SUBACK")
        if body[2] == 0x80:
            raise MQTTError("the broker refused the subscription to %s" % topic)
        return body[2]

    def ping(self):
        self._send(0xC0, b"")
        self._wait_for(0xD0, None, "PINGRESP")

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
        kind, body = self._read_packet(first)
        self._handle(kind, body)
        return kind

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    # --- wire ---------------------------------------------------------------------------------------
    def _send(self, header, body, parts=(), size=0):
        """Send one packet: fixed header, `body`, then `parts` (`size` bytes in all) as they are. A payload
        is copied into the packet only when small; a batch of readings goes from the caller's bytes."""
        if self.sock is None:
            raise MQTTError("not connected to the broker")
        data = bytes([header]) + _remaining_length(len(body) + size) + body
        try:
            if size <= SMALL_PAYLOAD:
                for part in parts:
                    data += part
                self._write(data)
            else:
                self._write(data)
                for part in parts:
                    self._write(part)
        except OSError as e:
            self.close()
            raise MQTTError("lost the connection to the broker while sending: %s" % e)

    def _write(self, data):
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            n = self.sock.send(view[sent:] if sent else view)
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
                if _is_timeout(e):
                    raise MQTTTimeout("the broker sent nothing for %s s" % self.timeout)
                raise MQTTError("lost the connection to the broker: %s" % e)
            if not chunk:
                self.close()
                raise MQTTError("the broker closed the connection")
            data = chunk if data is None else data + chunk
        return data

    def _read_packet(self, first=None):
        if self.sock is None:
            raise MQTTError("not connected to the broker")
        kind = (first or self._recv_exact(1))[0]
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
            if got == kind and (pid is None or len(body) >= 2 and (body[0] << 8) | body[1] == pid):
                return body
            self._handle(got, body)
        self.close()
        raise MQTTTimeout("no %s from the broker within %s s" % (name, self.timeout))

    def _handle(self, kind, body):
        # Packets that arrive while we wait for something else.
        if kind & 0xF0 == 0x30:
            qos = (kind >> 1) & 3
            n = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + n].decode()
            pos = 2 + n
            if qos:
                pid = struct.unpack(">H", body[pos:pos + 2])[0]
                pos += 2
                if qos == 1:
                    self._send(0x40, struct.pack(">H", pid))
            if self.on_message:
                self.on_message(topic, body[pos:])


try:
    _TIMEOUT_ERRORS = (TimeoutError,)
except NameError:  # MicroPython
    _TIMEOUT_ERRORS = ()


def _is_timeout(e):
    # CPython raises socket.timeout (TimeoutError); MicroPython raises OSError(ETIMEDOUT or EAGAIN).
    if isinstance(e, _TIMEOUT_ERRORS):
        return True
    code = e.args[0] if e.args else None
    return code in (11, 110, 116) or "timed out" in str(e)
