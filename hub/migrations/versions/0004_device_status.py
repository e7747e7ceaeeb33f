"""device_status: each device's last status (MQTT status topic, LoRaWAN status uplink) and when it arrived

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.timeutil

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_status",
        sa.Column("device_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("received_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("transport", sa.Enum("mqtt", "lorawan", "http", name="transport", native_enum=False, length=20),
                  nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("device_status")
