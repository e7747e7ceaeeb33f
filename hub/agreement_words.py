"""What a resident agreed to, in plain words: the labels print it, the private page shows it.

The sentences are built here in Python (for the labels) and, from the same wording sent with the page, in the
private page's script (hub/pages/private-page.js); tests/hub/test_private_page.py checks that both say the same.
"""

from typing import Any

from hub.consent import PURPOSES

KINDS = {"air": "Air sensor", "damp": "Damp sensor"}
SHARING = {
    "private": "Only you can see your readings.",
    "community": "Your community group sees averages for your area, never your sensor on its own.",
    "open": "Your readings are open data: anyone may download and reuse them, with credit to the community.",
}
TIME = {
    "exact": "They are published with the time they were measured.",
    "hour": "Their times are published rounded down to the hour.",
}
LOCATION = {
    "area": "They are published with your area, {area}, never your address.",
    "h3": "They are published with a map cell (size {size}, where 0 is a continent and 9 a few blocks), "
    "never your address.",
    "none": "No location is published with them.",
}
USES = "They may be used for: {uses}."
RETENTION = {
    "days": "Readings older than {days} days are no longer shared.",
    "until_withdrawn": "They are shared until you withdraw.",
}
GIVEN = "You agreed on {date} to consent text {version}, with {collected_by}."


def location(agreement: dict[str, Any], area: str) -> str:
    release = agreement["location_release"]
    return LOCATION[release].format(area=area, size=agreement.get("location_h3_resolution"))


def agreed(agreement: dict[str, Any], area: str) -> list[str]:
    """What the resident agreed to, one plain sentence at a time, from an agreement as the API gives it."""
    sentences = [SHARING[agreement["sharing"]]]
    if agreement["sharing"] == "open":
        sentences += [location(agreement, area), TIME[agreement["time_release"]]]
    uses = "; ".join(PURPOSES.get(purpose, purpose) for purpose in agreement["purposes"])
    sentences.append(USES.format(uses=uses))
    if agreement["sharing"] != "private":
        days = agreement["retention_days"]
        sentences.append(RETENTION["days"].format(days=days) if days else RETENTION["until_withdrawn"])
    sentences.append(GIVEN.format(date=agreement["granted_at"][:10], version=agreement["consent_version"],
                                  collected_by=agreement["collected_by"]))  # fmt: skip
    return sentences


def wording() -> dict[str, Any]:
    """Every piece of wording above, for the private page's script to build the same sentences."""
    return {"kinds": KINDS, "sharing": SHARING, "time": TIME, "location": LOCATION, "uses": USES,
            "retention": RETENTION, "given": GIVEN, "purposes": PURPOSES}  # fmt: skip
