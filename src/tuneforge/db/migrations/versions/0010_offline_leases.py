"""leases on eval runs, batches, background responses and vector-store files: several servers share one database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 20:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLES = ('eval_runs', 'batches', 'responses', 'vector_store_files')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('worker_id', sa.String(length=128), nullable=True))
            batch_op.add_column(sa.Column('lease_expires_at', sa.Float(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('lease_expires_at')
            batch_op.drop_column('worker_id')
