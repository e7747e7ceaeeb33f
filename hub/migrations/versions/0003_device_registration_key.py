"""device: the Idempotency-Key of its registration, so a repeated registration finds it again

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Devices registered before this have neither: a repeat of their registration cannot be recognised.
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registration_key_hash", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))  # fmt: skip
        batch_op.add_column(sa.Column("registration_body_sha256", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))  # fmt: skip
        batch_op.create_unique_constraint("uq_device_registration_key", ["registered_by", "registration_key_hash"])


def downgrade() -> None:
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_constraint("uq_device_registration_key", type_="unique")
        batch_op.drop_column("registration_body_sha256")
        batch_op.drop_column("registration_key_hash")
