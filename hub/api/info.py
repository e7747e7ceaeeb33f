"""What a device, or the `sensing` command setting one up, needs to know about this hub.

    GET /api/v1/hub  ->  {"name", "broker_host", "broker_port", "broker_tls", "consent_version", "key_role"}

The broker is the one devices publish to: the embedded broker wherever it ended up listening (it takes the
next free port when its own is taken), or the hub's own broker without the hub's login. A broker listening
on every address (0.0.0.0) is reported at the address the caller used to reach the hub.
"""

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from hub.api.deps import BearerDep, SessionDep, SettingsDep, identify
from hub.ingest.mqtt import BrokerAddress, parse_broker_url
from hub.models import ConsentText

router = APIRouter(tags=["hub"])

EVERY_ADDRESS = {"", "0.0.0.0", "::"}


class HubInfo(BaseModel):
    name: str
    broker_host: str = Field(description="where devices publish: the MQTT broker's address")
    broker_port: int
    broker_tls: bool = Field(description="whether devices must speak TLS to the broker (mqtts://)")
    consent_version: str | None = Field(description="the newest consent text, the one to show residents")
    key_role: str | None = Field(description="with a key sent: operator, facilitator or owner; else null")


def broker_address(request: Request, settings) -> BrokerAddress:  # type: ignore[no-untyped-def]
    """Where devices publish, without the hub's own login."""
    services = request.app.state.services
    url = (services.broker_url if services is not None else None) or settings.broker_url
    if url:
        address = parse_broker_url(url)
    else:
        address = BrokerAddress(settings.embedded_broker_host, settings.embedded_broker_port)
    host = (request.url.hostname or "127.0.0.1") if address.host in EVERY_ADDRESS else address.host
    return BrokerAddress(host, address.port, tls=address.tls)


@router.get("/hub", response_model=HubInfo)
def hub_info(request: Request, session: SessionDep, settings: SettingsDep, credentials: BearerDep) -> HubInfo:
    """The hub's name, the broker devices publish to, and the consent text to show; a key sent is checked."""
    broker = broker_address(request, settings)
    newest = session.exec(select(ConsentText).order_by(col(ConsentText.id).desc())).first()
    role = identify(credentials, session, settings).role if credentials is not None else None
    return HubInfo(
        name=settings.hub_name,
        broker_host=broker.host,
        broker_port=broker.port,
        broker_tls=broker.tls,
        consent_version=newest.version if newest else None,
        key_role=role,
    )
