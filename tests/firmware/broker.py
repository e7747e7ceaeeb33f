"""A real Mosquitto broker for tests, on a free local port, with its own configuration file.

    broker = Broker(tmp_path)          # or Broker(tmp_path, users={"dev-1": "secret"})
    broker.start(); broker.url         # "mqtt://127.0.0.1:PORT"
    broker.stop()
"""

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path


def find_mosquitto():
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, directory, binary=None, port=None, users=None, persistence=False):
        self.directory = Path(directory)
        self.binary = binary or find_mosquitto()
        self.port = port or free_port()
        self.users = users  # {username: password}; None lets anyone connect
        self.persistence = persistence  # True keeps sessions and queued messages across stop/start
        self.process = None

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            # Started as root, mosquitto would switch to the `mosquitto` user, who cannot read tmp_path.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.directory}/",
            # The default (1000) silently drops messages when a subscriber falls behind.
            "max_queued_messages 100000",
            f"log_dest file {self.directory / 'mosquitto.log'}",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwd = self.directory / "passwd"
            passwd.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.users.items()):
                flags = ["-b", "-c"] if i == 0 else ["-b"]
                subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout=10.0):
        config = self.write_config()
        self.process = subprocess.Popen([self.binary, "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not accept connections on port {self.port} within {timeout} s")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
