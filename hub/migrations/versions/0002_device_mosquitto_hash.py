"""device: the secret hashed for Mosquitto's password file

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Devices registered before this have none: the hub saw their secret only once, and kept only its SHA-256.
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mosquitto_hash", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("mosquitto_hash")
