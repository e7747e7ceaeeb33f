# Opening the MQTT connection of mqtt.py's MQTTClient: the socket, the TLS handshake (mqtt_tls.py), CONNECT
# and CONNACK. A board connects at start and after an outage, not every cycle, so MQTTClient.connect loads
# this module for it and lets it go afterwards. MicroPython (and CPython's socket and ssl, for a laptop).

try:
    from .buffer import load, release
    from .mqtt import MQTTError, MQTTRefused, MQTTTimeout, _utf8
except ImportError:  # copied flat onto a board
    from buffer import load, release
    from mqtt import MQTTError, MQTTRefused, MQTTTimeout, _utf8


def connect(c, sock=None):
    """MQTTClient.connect for client `c`: open the connection (with `sock` if given, already connected),
    over TLS when given a CA, and wait for CONNACK. True when the broker resumed a stored session."""
    if sock is None:
        sock = c._open_socket()
    c.sock = c.timed = sock
    try:
        sock.settimeout(c.timeout)
        if c.ca is not None:
            tls = load("mqtt_tls")  # for the handshake only: the heap does not keep it between connections
            try:
                c.sock = tls.handshake(sock, c.host, c.port, c.ca)
            finally:
                release(tls)
            if hasattr(c.sock, "settimeout"):  # CPython's TLS socket replaces the one it wraps
                c.timed = c.sock
        c._send(0x10, connect_body(c))
        try:
            kind, body = c._read_packet()
        except MQTTTimeout:
            raise
        except MQTTError as e:
            if c.ca is not None:
                raise
            # What a TLS listener does to a plain CONNECT: hang up.
            why = str(e).split(": ", 1)
            raise MQTTError("the broker closed the connection without answering CONNECT%s: if %d is a TLS "
                            "port, set broker_tls" % (" (%s)" % why[1] if len(why) > 1 else "", c.port))
        if kind != 0x20 or len(body) != 2:
            raise MQTTError("the broker answered CONNECT with packet type %d, not CONNACK" % (kind >> 4))
        if body[1] != 0:
            raise MQTTRefused(body[1])
        return bool(body[0] & 1)
    except Exception:
        c.close()
        raise


def open_socket(c):
    import socket
    try:
        addr = socket.getaddrinfo(c.host, c.port, 0, socket.SOCK_STREAM)[0][-1]
    except OSError as e:
        raise MQTTError("cannot resolve the broker address %s: %s" % (c.host, e))
    sock = socket.socket()
    sock.settimeout(c.timeout)
    try:
        sock.connect(addr)
    except OSError as e:
        sock.close()
        raise MQTTError("cannot reach the broker at %s:%d: %s" % (c.host, c.port, e))
    return sock


def connect_body(c):
    flags = 0x02 if c.clean_session else 0
    payload = _utf8(c.client_id)
    if c.will:
        topic, message, retain, qos = c.will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _utf8(topic) + _utf8(message)
    if c.user is not None:
        flags |= 0x80
        payload += _utf8(c.user)
        if c.password is not None:
            flags |= 0x40
            payload += _utf8(c.password)
    return b"\x00\x04MQTT\x04" + bytes((flags, c.keepalive >> 8, c.keepalive & 0xFF)) + payload
