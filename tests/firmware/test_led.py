"""The RGB status LED of the ESP32-S3 and C3 boards, under the real MicroPython unix port (tests/firmware/
led_runner.py: a fake machine.Pin and neopixel module record each colour written, at the board's virtual
time): each state in its colour and with a plain LED's rhythm, the `led` setting and sleep turning it dark,
and the main loop driving it on an S3."""

import json
import os
import subprocess

import pytest

from tests.firmware.support import REPO
from tests.services import free_port

RUNNER = REPO / "tests" / "firmware" / "led_runner.py"
WHITE, GREEN, BLUE, AMBER, RED, PURPLE, DARK = (
    [24, 24, 24], [0, 32, 0], [0, 0, 40], [40, 16, 0], [48, 0, 0], [32, 0, 32], [0, 0, 0])


@pytest.fixture(scope="module")
def runs(micropython, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    env = dict(os.environ, MICROPYPATH=str(REPO))
    out = subprocess.run([micropython, str(RUNNER), str(state), str(free_port()), "s3", "c3", "off", "app",
                          "no_module", "gpio"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def played(start, colour, pattern, periods=2):
    """[ms, colour] as a pattern of (level, ms) steps writes them over `periods` periods from `start`."""
    out = []
    at = start
    for _ in range(periods):
        for level, ms in pattern:
            out.append([at, colour if level else DARK])
            at += ms
    return out + [[at, colour if pattern[0][0] else DARK]]  # the next period begins just as the state ends


def every_state(start=0):
    steps = played(start, WHITE, [(1, 1000)])
    at = start + 2000
    for colour, pattern in [
        (GREEN, [(1, 50), (0, 2950)]),                      # all is well: a blip every 3 s
        (BLUE, [(1, 100), (0, 100)]),                       # sending: fast flicker
        (AMBER, [(1, 1000), (0, 1000)]),                    # no network: slow blink
        (RED, [(1, 200), (0, 200), (1, 200), (0, 1400)]),   # a sensor fault: two short blinks, a pause
        (PURPLE, [(1, 200), (0, 200), (1, 200), (0, 200), (1, 200), (0, 1200)]),  # settings wrong: three blinks
    ]:
        steps += played(at, colour, pattern)
        at += 2 * sum(ms for _, ms in pattern)
    return steps


@pytest.mark.parametrize("board, pin", [("s3", 48), ("c3", 8)])
def test_each_state_has_its_colour_and_a_plain_leds_rhythm(runs, board, pin):
    assert runs[board]["pins"] == [[pin, 1]]  # the WS2812's data pin from the board's map, as an output
    assert runs[board]["written"] == every_state()


def test_the_led_setting_and_sleep_keep_it_dark(runs):
    assert runs["off"]["written"] == [
        [0, WHITE], [0, AMBER], [1000, DARK],
        [1500, DARK],                  # "led": false half-way through the dark second
        [4500, DARK], [5000, AMBER],   # on again: the pattern picks up where it stopped
        [5500, DARK],                  # light sleep: dark while it waits
        [8500, DARK], [8500, DARK],    # deep sleep: dark
    ]


def test_the_main_loop_drives_the_rgb_led_of_an_s3(runs):
    # The broker does not answer: white while it starts, blue while it tries to send, then amber, one
    # second on and one off, until the next reading (5 s on), which tries again.
    assert runs["app"]["log"][0].startswith("sensing: cannot send to 127.0.0.1:")
    assert runs["app"]["pins"] == [[48, 1]]
    assert runs["app"]["written"] == [
        [0, WHITE], [0, BLUE], [0, AMBER], [1000, DARK], [2000, AMBER], [3000, DARK], [4000, AMBER],
        [5000, DARK], [5000, BLUE], [5000, AMBER]]


def test_a_port_without_the_neopixel_module_has_no_led_and_carries_on(runs):
    assert runs["no_module"] == {"led": None, "pins": [[8, 1]], "written": []}


def test_a_plain_led_still_gets_its_pin(runs):
    assert runs["gpio"] == {"kind": "Pin", "pins": [[2, 1]], "written": []}


def test_the_docs_give_each_pattern_its_colour():
    section = (REPO / "docs" / "firmware.md").read_text().split("## The status LED", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[:2] for line in section.splitlines() if line.startswith("| ")][1:]
    assert [(pattern.lstrip("| "), colour) for pattern, colour in rows] == [
        ("Steady on", "White"), ("A short blip every 3 seconds", "Green"), ("Fast flicker", "Blue"),
        ("Slow blink: 1 second on, 1 second off", "Amber"), ("Two short blinks, then a pause", "Red"),
        ("Three short blinks, then a pause", "Purple")]
