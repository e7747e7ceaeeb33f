"""MQTT over TLS: the firmware under the real MicroPython unix port against a Mosquitto with a TLS listener.

The broker has two listeners: plain MQTT on `port`, where the test's subscriber listens, and MQTT over TLS on
`tls_port`, with a certificate for 127.0.0.1 signed by a CA made for the test.
"""

import json
import os
import shutil
import subprocess

import pytest

from firmware import app
from firmware.buffer import Buffer
from tests.firmware.support import REPO
from tests.firmware.test_app import DEVICE, SECRET, USERS, Subscriber, assert_readings, online, run_app, write_config
from tests.services import Mosquitto, make_certificates, mosquitto_path, require

pytestmark = [pytest.mark.mosquitto]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    require(shutil.which("openssl") is not None, "openssl is not installed (apt install openssl)")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """Another CA, which did not sign the broker's certificate."""
    return make_certificates(tmp_path_factory.mktemp("stranger"), name="Some other CA")


@pytest.fixture
def broker(certificates):
    require(mosquitto_path() is not None, "mosquitto is not installed (apt install mosquitto)")
    with Mosquitto(passwords=USERS, tls=certificates) as running:
        yield running


def tls_config(tmp_path, broker, ca, **overrides):
    return write_config(tmp_path, broker.tls_port, broker_tls=True, broker_ca=str(ca), **overrides)


def test_readings_and_settings_go_over_tls(micropython, broker, certificates, tmp_path):
    sub = Subscriber(broker)
    # A retained settings change: it reaches the device over TLS too.
    sub.client.publish(f"sensing/v1/{DEVICE}/config", b'{"led": false}', qos=1, retain=True).wait_for_publish(5)
    out = run_app(micropython, tls_config(tmp_path, broker, certificates.ca))  # the CA as PEM
    assert out == "sensing: settings changed: led false\n"
    assert_readings(sub.wait_for_records(5), range(5))
    sub.stop()
    status = [p for t, p, _ in sub.messages if t.endswith("/status")]
    assert status == [online(), b'{"state": "offline"}']
    assert broker.ports_of(DEVICE) == [broker.tls_port]
    assert len(Buffer(str(tmp_path / "state"))) == 0


def test_a_broker_signed_by_another_ca_is_refused_and_the_readings_wait_for_the_right_one(
        micropython, broker, certificates, stranger, tmp_path):
    sub = Subscriber(broker)
    out = run_app(micropython, tls_config(tmp_path, broker, stranger.ca, cycles=3))
    lines = out.splitlines()
    refused = (f"sensing: cannot send to 127.0.0.1:{broker.tls_port} (the broker's certificate is not signed by "
               f"the CA in {stranger.ca}); ")
    assert lines[0] == refused + "1 reading(s) kept, retrying in 0.1 s"
    # Retried after each backoff, refused the same way each time, until the run ends with all three kept.
    assert [line for line in lines[1:-1] if not line.startswith(refused)] == []
    assert lines[-1] == "sensing: 3 reading(s) still queued, sent at the next start"
    assert len(Buffer(str(tmp_path / "state"))) == 3
    assert sub.messages == []  # nothing reached the broker: not a reading, not a status

    # The right CA (as DER this time): the kept readings go, with their seqs, in one batch with the first new one.
    out = run_app(micropython, tls_config(tmp_path, broker, certificates.ca_der(), cycles=2))
    assert out == ""
    decoded = sub.wait_for_records(5)
    assert_readings(decoded, range(5))
    assert [len(recs) for recs, _ in decoded] == [4, 1]  # the first new reading is taken before the first send
    sub.stop()


def test_a_ca_file_missing_on_the_device_is_a_failure_to_send_not_a_crash(micropython, broker, tmp_path):
    out = run_app(micropython, tls_config(tmp_path, broker, tmp_path / "no-such-ca.der", cycles=1))
    assert out.splitlines() == [
        f"sensing: cannot send to 127.0.0.1:{broker.tls_port} (cannot read the broker's CA certificate "
        f"{tmp_path / 'no-such-ca.der'}: [Errno 2] ENOENT); 1 reading(s) kept, retrying in 0.1 s",
        "sensing: 1 reading(s) still queued, sent at the next start",
    ]


# The client alone: `host` is the name the broker's certificate is checked against, while the socket goes to
# 127.0.0.1 whatever the name, so a name the certificate is not for can be tried without a DNS entry.
TLS_PROBE = """
import socket
import sys
from firmware import mqtt
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    c = mqtt.MQTTClient(sys.argv[4], host, port, user=sys.argv[4], password=sys.argv[5], timeout=5,
                        ca=ca or None)
    sock = socket.socket()
    sock.connect(socket.getaddrinfo("127.0.0.1", port, 0, socket.SOCK_STREAM)[0][-1])
    c.connect(sock)
    print("connected")
    c.disconnect()
except mqtt.MQTTError as e:
    print(type(e).__name__, e)
"""


def probe(micropython, tmp_path, host, port, ca=""):
    script = tmp_path / "tls_probe.py"
    script.write_text(TLS_PROBE)
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(script), host, str(port), str(ca), DEVICE, SECRET], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_broker_is_checked_by_name_too(micropython, broker, certificates, tmp_path):
    assert probe(micropython, tmp_path, "127.0.0.1", broker.tls_port, certificates.ca) == "connected"
    assert probe(micropython, tmp_path, "localhost", broker.tls_port, certificates.ca) == "connected"
    assert probe(micropython, tmp_path, "broker.example.org", broker.tls_port, certificates.ca) == (
        "MQTTUntrusted the broker's certificate is not for broker.example.org")


def test_plain_mqtt_to_the_tls_port_and_tls_to_the_plain_port_fail_clearly(micropython, broker, certificates,
                                                                          tmp_path):
    # Mosquitto hangs up on a CONNECT that is not a TLS handshake; mbedTLS on a handshake answered by MQTT.
    assert probe(micropython, tmp_path, "127.0.0.1", broker.tls_port) == (
        "MQTTError the broker closed the connection without answering CONNECT ([Errno 104] ECONNRESET): "
        f"if {broker.tls_port} is a TLS port, set broker_tls")
    assert probe(micropython, tmp_path, "127.0.0.1", broker.port, certificates.ca) == (
        f"MQTTError the TLS handshake with the broker at 127.0.0.1:{broker.port} failed ([Errno 104] ECONNRESET): "
        "is it a TLS port?")


def test_a_file_that_is_not_a_certificate_is_said_so(micropython, broker, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    assert probe(micropython, tmp_path, "127.0.0.1", broker.tls_port, bad) == (
        f"MQTTError {bad} is not a CA certificate (PEM or DER)")


BASE = {"device_id": DEVICE, "secret": SECRET}


def test_tls_without_a_ca_is_refused_rather_than_left_unchecked():
    with pytest.raises(ValueError) as refused:
        app.make_config(BASE | {"broker_tls": True, "broker_port": 8883})
    assert str(refused.value) == ("broker_tls needs broker_ca: the path on the device of the CA certificate that "
                                  "signed the broker's")
    with pytest.raises(ValueError) as refused:
        app.make_config(BASE | {"broker_ca": "/broker-ca.der"})
    assert str(refused.value) == "broker_ca is set but broker_tls is false: set broker_tls to true to use TLS"
    with pytest.raises(ValueError) as refused:
        app.make_config(BASE | {"broker_tls": "yes", "broker_ca": "/broker-ca.der"})
    assert str(refused.value) == 'broker_tls must be true or false, not "yes"'
    config = app.make_config(BASE | {"broker_tls": True, "broker_ca": "/broker-ca.der", "broker_port": 8883})
    assert (config["broker_tls"], config["broker_ca"], config["broker_port"]) == (True, "/broker-ca.der", 8883)
    assert json.dumps({k: app.make_config(BASE)[k] for k in ("broker_tls", "broker_ca", "broker_port")}) == (
        '{"broker_tls": false, "broker_ca": "", "broker_port": 1883}')
