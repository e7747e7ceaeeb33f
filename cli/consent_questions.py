"""The resident's choices for `sensing device provision`: asked in plain words, or read from an answers file.

An answers file (YAML or JSON) uses the hub's own names; only `sharing`, `area` and `collected_by` are required:

    sharing: open                  # private (only me), community (area averages), open (open data)
    purposes: [community_awareness, research]   # GET /api/v1/consent/purposes; default community_awareness
    area: easton
    placement: outdoor             # indoor or outdoor
    location_release: area         # area, h3 (a map cell: give latitude and longitude) or none
    collected_by: Easton workshop team
    wifi_ssid: Home network        # leave out when the board needs no WiFi
    wifi_password: ...

Every check raises AnswerError with one sentence, so a file with a mistake is refused before anything is
registered.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SHARING = {
    "private": "Only me",
    "community": "My community group, as averages for my area",
    "open": "Anyone, as open data",
}
PLACEMENT = {"indoor": "Indoors", "outdoor": "Outdoors"}
LOCATION = {
    "area": "Only the name of the area",
    "h3": "A map cell of a few city blocks (the exact place stays private)",
    "none": "No location at all",
}
KINDS = ("air", "damp")
H3_DEFAULT = 8  # a map cell about 0.7 km²: a few city blocks


class AnswerError(ValueError):
    """An answer that cannot be used; the message says which, and what to give instead."""


@dataclass
class Answers:
    sharing: str
    area: str
    collected_by: str
    purposes: list[str] = field(default_factory=lambda: ["community_awareness"])
    placement: str = "outdoor"
    location_release: str = "area"
    h3_resolution: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    kind: str = "air"
    label: str = ""
    wifi_ssid: str = ""
    wifi_password: str = ""
    sensors: str | None = None  # "emulated": the firmware's emulated sensor, for a board without chips
    consent_version: str | None = None

    def check(self, purposes: dict[str, str]) -> "Answers":
        one_of("sharing", self.sharing, SHARING)
        one_of("placement", self.placement, PLACEMENT)
        one_of("location_release", self.location_release, LOCATION)
        one_of("kind", self.kind, KINDS)
        if not self.area.strip():
            raise AnswerError("The area is missing: give the name of the neighbourhood or ward the sensor is in.")
        if not self.collected_by.strip():
            raise AnswerError("Say who took the consent (collected_by): the facilitator's name or group.")
        unknown = [p for p in self.purposes if p not in purposes]
        if unknown or not self.purposes:
            raise AnswerError(f"Unknown purpose {', '.join(unknown) or '(none given)'}: "
                              f"choose from {', '.join(purposes)}.")  # fmt: skip
        if self.location_release == "h3":
            if self.latitude is None or self.longitude is None:
                raise AnswerError("A map cell needs the sensor's latitude and longitude (they stay private).")
            if self.h3_resolution is None:
                self.h3_resolution = H3_DEFAULT
        elif self.h3_resolution is not None:
            raise AnswerError("h3_resolution only applies when location_release is h3 (a map cell).")
        if len(self.wifi_ssid.encode()) > 32:
            raise AnswerError("The WiFi network name can't be longer than 32 characters.")
        if len(self.wifi_password.encode()) > 63:
            raise AnswerError("The WiFi password can't be longer than 63 characters.")
        return self

    def registration(self, board: str, consent_version: str) -> dict:
        """The body of POST /api/v1/devices."""
        return {
            "device": {
                "kind": self.kind, "board": board, "transport": "mqtt", "placement": self.placement,
                "area": self.area.strip(), "label": self.label,
                "latitude": self.latitude, "longitude": self.longitude,
            },
            "agreement": {
                "consent_version": self.consent_version or consent_version, "sharing": self.sharing,
                "purposes": self.purposes, "location_release": self.location_release,
                "location_h3_resolution": self.h3_resolution,
                "collection_method": "workshop", "collected_by": self.collected_by.strip(),
            },
        }  # fmt: skip


def one_of(name: str, value: str, choices) -> None:  # type: ignore[no-untyped-def]
    if value not in choices:
        raise AnswerError(f"The {name} '{value}' is not one of {', '.join(choices)}.")


def from_file(path: Path, purposes: dict[str, str]) -> Answers:
    """Read and check an answers file (YAML, or JSON, which YAML reads too)."""
    try:
        given = yaml.safe_load(path.read_text())
    except OSError as e:
        raise AnswerError(f"Cannot read the answers file {path} ({e.strerror}).") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AnswerError(f"The answers file {path} is not valid YAML or JSON{where}.") from None
    if not isinstance(given, dict):
        raise AnswerError(f"The answers file {path} should hold names and answers, like sharing: open.")
    known = set(Answers.__dataclass_fields__)
    unknown = sorted(set(given) - known)
    if unknown:
        raise AnswerError(f"The answers file {path} has an unknown answer '{unknown[0]}'.")
    missing = [name for name in ("sharing", "area", "collected_by") if not given.get(name)]
    if missing:
        raise AnswerError(f"The answers file {path} does not say '{missing[0]}'.")
    given = {name: "" if value is None and name.startswith("wifi") else value for name, value in given.items()}
    if isinstance(given.get("purposes"), str):
        given["purposes"] = [given["purposes"]]
    return Answers(**given).check(purposes)


Ask = Callable[..., str]


def choose(ask: Ask, say: Callable[[str], None], question: str, options: dict[str, str], default: str) -> str:
    """A numbered list; the answer is a number. Returns the option's key."""
    keys = list(options)
    say(question)
    for number, key in enumerate(keys, 1):
        say(f"  {number}. {options[key]}")
    while True:
        answer = ask("Choose a number", default=str(keys.index(default) + 1)).strip()
        if answer.isdigit() and 1 <= int(answer) <= len(keys):
            return keys[int(answer) - 1]
        say(f"Please type a number from 1 to {len(keys)}.")


def choose_several(ask: Ask, say: Callable[[str], None], question: str, options: dict[str, str]) -> list[str]:
    keys = list(options)
    say(question)
    for number, key in enumerate(keys, 1):
        say(f"  {number}. {options[key]}")
    while True:
        answer = ask("Choose one or more numbers, e.g. 1,2", default="1")
        picked = [part.strip() for part in answer.replace(" ", ",").split(",") if part.strip()]
        if picked and all(p.isdigit() and 1 <= int(p) <= len(keys) for p in picked):
            return [keys[int(p) - 1] for p in dict.fromkeys(picked)]
        say(f"Please type numbers from 1 to {len(keys)}, separated by commas.")


def interview(ask: Ask, say: Callable[[str], None], purposes: dict[str, str]) -> Answers:
    """The questions, in plain words, in the order a resident thinks about them."""
    sharing = choose(ask, say, "Who may see the readings?", SHARING, "community")
    used_for = choose_several(ask, say, "What may the readings be used for?", purposes)
    area = ask("Which area is the sensor in (a neighbourhood or ward)?")
    placement = choose(ask, say, "Is the sensor indoors or outdoors?", PLACEMENT, "outdoor")
    location = choose(ask, say, "Where may the published readings say the sensor is?", LOCATION, "area")
    latitude = longitude = None
    if location == "h3":
        latitude = float(ask("The sensor's latitude (kept private), e.g. 51.4613"))
        longitude = float(ask("The sensor's longitude (kept private), e.g. -2.5647"))
    ssid = ask("WiFi network name (leave empty if the board needs no WiFi)", default="")
    password = ask("WiFi password", default="", hide_input=True) if ssid else ""
    collected_by = ask("Who is taking this consent (your name or group)?")
    return Answers(
        sharing=sharing, area=area, collected_by=collected_by, purposes=used_for, placement=placement,
        location_release=location, latitude=latitude, longitude=longitude,
        wifi_ssid=ssid, wifi_password=password,
    )  # fmt: skip
