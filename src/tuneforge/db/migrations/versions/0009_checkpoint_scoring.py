"""checkpoint scoring: a job's validation_eval, each checkpoint's eval run

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 20:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('validation_eval', sa.Text(), nullable=True))
    with op.batch_alter_table('fine_tuning_checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scoring_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('eval_run_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fine_tuning_checkpoints', schema=None) as batch_op:
        batch_op.drop_column('eval_run_id')
        batch_op.drop_column('scoring_status')
    with op.batch_alter_table('fine_tuning_jobs', schema=None) as batch_op:
        batch_op.drop_column('validation_eval')
