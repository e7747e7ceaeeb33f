"""Agreements are immutable once given; the agreement in force is the newest one not withdrawn."""

import pytest
from sqlmodel import Session, select

from hub import consent
from hub.models import Agreement, AgreementStatus, Device


def agreement_of(session: Session, public_id: str) -> Agreement:
    device = session.exec(select(Device).where(Device.public_id == public_id)).one()
    return session.exec(select(Agreement).where(Agreement.device_id == device.id)).one()


def test_an_agreement_cannot_be_changed_once_given(client, register):
    reg = register(sharing="private")
    with Session(client.app.state.engine) as session:
        agreement = agreement_of(session, reg["device"]["public_id"])
        agreement.sharing = "open"
        session.add(agreement)
        with pytest.raises(consent.ImmutableAgreement) as raised:
            session.commit()
    assert str(raised.value) == (
        "an agreement cannot be changed once given (tried to change sharing): give a new agreement instead"
    )
    with Session(client.app.state.engine) as session:
        assert agreement_of(session, reg["device"]["public_id"]).sharing == "private"


def test_a_withdrawn_agreement_cannot_be_reinstated(client, register):
    reg = register()
    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    assert client.post(f"/api/v1/devices/{reg['device']['public_id']}/withdraw", headers=owner).status_code == 200
    with Session(client.app.state.engine) as session:
        agreement = agreement_of(session, reg["device"]["public_id"])
        assert agreement.status == AgreementStatus.withdrawn
        agreement.status = AgreementStatus.active
        session.add(agreement)
        with pytest.raises(consent.ImmutableAgreement, match="cannot be reinstated"):
            session.commit()


def test_the_agreement_in_force_is_the_newest_not_withdrawn(client, register):
    reg = register(sharing="community")
    public_id = reg["device"]["public_id"]
    owner = {"Authorization": f"Bearer {reg['owner_token']}"}
    body = {"consent_version": "2026-11", "sharing": "open", "collection_method": "online", "collected_by": "self"}
    newer = client.post(f"/api/v1/devices/{public_id}/agreements", json=body, headers=owner).json()
    with Session(client.app.state.engine) as session:
        device = session.exec(select(Device).where(Device.public_id == public_id)).one()
        assert consent.agreement_in_force(session, device.id).id == newer["id"]
        consent.withdraw(session, device.id)
        session.commit()
        assert consent.agreement_in_force(session, device.id) is None
