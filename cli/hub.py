"""`sensing hub`: run the hub, its ingest worker, its database migrations, and Mosquitto's password files."""

import logging
from pathlib import Path

import typer
from pydantic import ValidationError

from cli.app import abort, console

app = typer.Typer(help="Run the community hub: API, open data, MQTT ingest.", no_args_is_help=True)


def _settings():  # type: ignore[no-untyped-def]
    from hub.settings import Settings, UnsafeSettings

    try:
        return Settings()
    except (ValidationError, UnsafeSettings) as exc:
        message = str(exc.errors()[0]["msg"]) if isinstance(exc, ValidationError) else str(exc)
        abort(f"The hub's settings are not usable: {message.removeprefix('Value error, ')}.")


def banner(app, settings) -> str:  # type: ignore[no-untyped-def]
    from hub.ingest.mqtt import without_password

    base = f"http://{settings.host}:{settings.port}"
    services = app.state.services
    broker = without_password(services.broker_url) if services is not None else "(not started)"
    embedded = " (embedded)" if not settings.broker_url else ""
    lines = [
        f"[bold]{settings.hub_name}[/bold] is running.",
        f"  API           {base}/api/v1",
        f"  API docs      {base}/docs",
        f"  Open data     {base}/api/v1/open/readings  (CSV: {base}/api/v1/open/readings.csv)",
        f"  MQTT broker   {broker}{embedded}",
        f"  Database      {settings.sqlalchemy_url}",
    ]
    if settings.environment == "development" and not settings.operator_key:
        key_file = (settings.data_dir / "operator-key").resolve()
        lines.append(f"  Operator key  {settings.resolved_operator_key()}  (development; kept in {key_file})")
    return "\n".join(lines)


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (default: SENSING_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="HTTP port (default: SENSING_PORT or 8000)."),
) -> None:
    """Start the hub: HTTP API, open data, and MQTT ingest (with an embedded broker unless one is configured)."""
    import uvicorn

    from hub.app import create_app

    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("transitions", "amqtt"):  # the embedded broker logs every state change at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    hub_app = create_app(settings, on_ready=lambda a: console.print(banner(a, settings), highlight=False))
    try:
        uvicorn.run(hub_app, host=settings.host, port=settings.port, log_level="info")
    except OSError as exc:
        abort(f"The hub could not listen on {settings.host}:{settings.port} ({exc.strerror}): try --port.")


@app.command()
def ingest() -> None:
    """Run only the MQTT ingest worker against SENSING_BROKER_URL (several may share the load)."""
    from hub.ingest.worker import main

    settings = _settings()
    if not settings.broker_url:
        abort("A standalone ingest worker needs SENSING_BROKER_URL, the broker the devices publish to.")
    raise typer.Exit(main())


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (the hub also does this when it starts)."""
    from hub.db import make_engine
    from hub.db import migrate as run_migrations

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    run_migrations(engine)
    engine.dispose()
    console.print(f"✓ Database schema is up to date: {settings.sqlalchemy_url}", highlight=False)


@app.command("broker-files")
def broker_files(
    directory: Path = typer.Option(..., "--dir", help="Where to write `passwords` and `acl` for Mosquitto."),
) -> None:
    """Write Mosquitto's password file and ACL: each device logs in with its id and secret, and publishes only
    under its own id; the hub's ingest logs in as the user in SENSING_BROKER_URL."""
    from hub.broker_files import hub_login, write_broker_files
    from hub.db import make_engine
    from hub.db import migrate as run_migrations

    settings = _settings()
    try:
        hub_user, hub_password = hub_login(settings)
    except ValueError as exc:
        abort(f"The hub's settings are not usable: {exc}.")
    engine = make_engine(settings.sqlalchemy_url)
    try:
        run_migrations(engine)
        written = write_broker_files(engine, directory, hub_user, hub_password)
    except OSError as exc:
        abort(f"Could not write the broker files in {directory} ({exc.strerror}): is it a directory you can write?")
    finally:
        engine.dispose()
    console.print(f"✓ {devices(written.devices)} written to {written.passwords} and {written.acl}.", highlight=False)
    if written.without_hash:
        console.print(f"! {devices(written.without_hash)} registered before the hub kept Mosquitto hashes "
                      "cannot log in to Mosquitto until registered again.", highlight=False)
    if not hub_user or hub_password is None:
        console.print("! SENSING_BROKER_URL has no user and password (mqtt://user:password@host:port): "
                      "the hub's ingest cannot log in to this Mosquitto.", highlight=False)


def devices(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"
