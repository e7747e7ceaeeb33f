# The TLS handshake of the MQTT client (mqtt.py), which loads this module for the handshake only and lets it
# go afterwards. MicroPython (and CPython's ssl, for a laptop). The broker's certificate is checked against one
# CA certificate (PEM or DER) and the broker's name.

try:
    from .mqtt import MQTTError
except ImportError:  # copied flat onto a board
    from mqtt import MQTTError


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


def handshake(sock, host, port, ca):
    """The TLS stream over `sock`, once the broker's certificate checks out. Raises MQTTError (MQTTUntrusted
    when the certificate fails the check) with one sentence."""
    context = tls_context(ca)  # read at each connect: a board's heap does not keep it in between
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ValueError as e:  # MicroPython: the certificate failed; its text says why, a line a reason
        raise MQTTUntrusted("the broker's certificate %s" % why_untrusted(str(e), host, ca))
    except OSError as e:
        if getattr(e, "verify_message", None):  # CPython's ssl.SSLCertVerificationError
            raise MQTTUntrusted("the broker's certificate failed the check: %s" % e.verify_message)
        raise MQTTError("the TLS handshake with the broker at %s:%d failed (%s): is it a TLS port?"
                        % (host, port, e))


def why_untrusted(text, host, ca):
    for words, ours in UNTRUSTED_BECAUSE:
        if words in text:
            return ours % {"ca": ca, "host": host}
    reason = text.strip().split("\n")[0].rstrip(".") or "no reason given"
    return "failed the check (%s)" % reason
