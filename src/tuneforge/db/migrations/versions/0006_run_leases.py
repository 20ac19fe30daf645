"""run leases: the server running an assistants run holds a lease it renews (heartbeat)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('worker_id')
