"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:08:16.324058
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.models  # noqa: F401

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column(
            "role",
            sa.Enum("operator", "facilitator", name="role", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", hub.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "consent_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("wording", sa.Text(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version"),
    )
    op.create_table(
        "device",
        sa.Column("kind", sa.Enum("air", "damp", name="kind", native_enum=False, length=20), nullable=False),
        sa.Column("board", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "transport",
            sa.Enum("mqtt", "lorawan", "http", name="transport", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "placement",
            sa.Enum("indoor", "outdoor", name="placement", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("area", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner_token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("registered_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("created_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_token_hash"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_public_id"), ["public_id"], unique=True)

    op.create_table(
        "agreement",
        sa.Column(
            "sharing",
            sa.Enum("private", "community", "open", name="sharing", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column(
            "location_release",
            sa.Enum("none", "area", "h3", name="locationrelease", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("location_h3_resolution", sa.Integer(), nullable=True),
        sa.Column(
            "time_release",
            sa.Enum("exact", "hour", name="timerelease", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("collection_method", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("collected_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("consent_text_id", sa.Integer(), nullable=False),
        sa.Column("granted_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum("active", "withdrawn", name="agreementstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("withdrawn_at", hub.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_text_id"],
            ["consent_text.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agreement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agreement_device_id"), ["device_id"], unique=False)

    op.create_table(
        "rejection",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("received_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "transport",
            sa.Enum("mqtt", "lorawan", "http", name="transport", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("claimed_device", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("excerpt", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rejection", schema=None) as batch_op:
        batch_op.create_index("ix_rejection_device_received", ["device_id", "received_at"], unique=False)

    op.create_table(
        "reading",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("measured_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", hub.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column(
            "transport",
            sa.Enum("mqtt", "lorawan", "http", name="transport", native_enum=False, length=20),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreement.id"],
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["device.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "seq", "quantity", name="uq_reading_device_seq_quantity"),
    )
    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.create_index("ix_reading_agreement", ["agreement_id"], unique=False)
        batch_op.create_index("ix_reading_device_measured", ["device_id", "measured_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("reading", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_device_measured")
        batch_op.drop_index("ix_reading_agreement")

    op.drop_table("reading")
    with op.batch_alter_table("rejection", schema=None) as batch_op:
        batch_op.drop_index("ix_rejection_device_received")

    op.drop_table("rejection")
    with op.batch_alter_table("agreement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agreement_device_id"))

    op.drop_table("agreement")
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_public_id"))

    op.drop_table("device")
    op.drop_table("consent_text")
    op.drop_table("api_key")
