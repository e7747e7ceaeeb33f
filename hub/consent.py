"""Consent: versioned texts, agreements (immutable once given), and the agreement in force."""

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Subquery, event, inspect
from sqlmodel import Session, col, func, select

from hub.models import Agreement, AgreementCreate, AgreementStatus, ConsentText, Device, LocationRelease
from hub.timeutil import utcnow

TEXTS_DIR = Path(__file__).parent / "consent_texts"

# What readings may be used for. A fixed vocabulary, so that an agreement means the same to everyone.
PURPOSES = {
    "community_awareness": "showing the community what its air and homes are like",
    "research": "research by universities and community researchers",
    "council_evidence": "evidence for the council's policies and services",
    "education": "teaching in schools and workshops",
    "home_advice": "advice to the resident about their own home (damp, ventilation)",
}


class ConsentError(ValueError):
    """A consent request that cannot be honoured; the message says what to fix."""


class ImmutableAgreement(RuntimeError):
    pass


def wording_sha256(wording: str) -> str:
    return hashlib.sha256(wording.encode()).hexdigest()


def ensure_bundled_texts(session: Session) -> None:
    """Store every consent text shipped with the hub (file name = version), once."""
    for path in sorted(TEXTS_DIR.glob("*.md")):
        version = path.stem
        wording = path.read_text()
        existing = session.exec(select(ConsentText).where(ConsentText.version == version)).first()
        if existing is None:
            session.add(ConsentText(version=version, wording=wording, sha256=wording_sha256(wording)))
        elif existing.sha256 != wording_sha256(wording):
            raise ConsentError(
                f"the shipped consent text {version} differs from the one stored: "
                "a published wording must never change, give the new wording a new version"
            )
    session.commit()


def check_agreement(data: AgreementCreate, device: Device) -> None:
    unknown = sorted(set(data.purposes) - set(PURPOSES))
    if unknown:
        raise ConsentError(f"unknown purpose {', '.join(unknown)}: choose from {', '.join(sorted(PURPOSES))}")
    if data.location_release == LocationRelease.h3 and data.location_h3_resolution is None:
        raise ConsentError("location_release 'h3' needs location_h3_resolution (0 coarsest to 9)")
    if data.location_release == LocationRelease.h3 and (device.latitude is None or device.longitude is None):
        raise ConsentError("location_release 'h3' needs the device's latitude and longitude")
    if data.location_release != LocationRelease.h3 and data.location_h3_resolution is not None:
        raise ConsentError("location_h3_resolution only applies when location_release is 'h3'")


def give_agreement(session: Session, device: Device, data: AgreementCreate) -> Agreement:
    """Record a new agreement for `device`; it is in force from now on. The caller commits."""
    check_agreement(data, device)
    text = session.exec(select(ConsentText).where(ConsentText.version == data.consent_version)).first()
    if text is None:
        raise ConsentError(f"there is no consent text version '{data.consent_version}'")
    agreement = Agreement(
        **data.model_dump(exclude={"consent_version"}),
        device_id=device.id,
        consent_text_id=text.id,
    )
    session.add(agreement)
    return agreement


def newest_agreements() -> Subquery:
    """(device_id, agreement_id) of each device's newest agreement: the one in force, unless withdrawn."""
    return (
        select(Agreement.device_id, func.max(Agreement.id).label("agreement_id"))  # type: ignore[arg-type]
        .group_by(Agreement.device_id)
        .subquery()
    )


def agreements_in_force(session: Session, device_ids: Iterable[int]) -> dict[int, Agreement]:
    """device id -> the agreement in force, for those of `device_ids` that have one. One query."""
    newest = newest_agreements()
    query = (
        select(Agreement)
        .join(newest, col(Agreement.id) == newest.c.agreement_id)
        .where(col(Agreement.device_id).in_(list(device_ids)), Agreement.status == AgreementStatus.active)
    )
    return {agreement.device_id: agreement for agreement in session.exec(query)}


def agreement_in_force(session: Session, device_id: int) -> Agreement | None:
    """The newest agreement of the device, if it has not been withdrawn."""
    return agreements_in_force(session, [device_id]).get(device_id)


def withdraw(session: Session, device_id: int, when: datetime | None = None) -> int:
    """Withdraw every agreement of the device: its readings leave every output at once. The caller commits."""
    when = when or utcnow()
    count = 0
    for agreement in session.exec(
        select(Agreement).where(Agreement.device_id == device_id, Agreement.status == AgreementStatus.active)
    ):
        agreement.status = AgreementStatus.withdrawn
        agreement.withdrawn_at = when
        session.add(agreement)
        count += 1
    return count


@event.listens_for(Agreement, "before_update")
def _agreement_is_immutable(_mapper, _connection, target: Agreement) -> None:  # type: ignore[no-untyped-def]
    state = inspect(target)
    changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
    if not changed <= {"status", "withdrawn_at"}:
        raise ImmutableAgreement(
            f"an agreement cannot be changed once given (tried to change {', '.join(sorted(changed))}): "
            "give a new agreement instead"
        )
    old_status = state.attrs.status.history.deleted
    if old_status and old_status[0] == AgreementStatus.withdrawn:
        raise ImmutableAgreement("a withdrawn agreement cannot be reinstated: give a new agreement instead")
