"""Takeover of background responses and assistants runs whose server stopped: responses.request (what is
needed to run a background response again on another server), responses.takeovers and runs.takeovers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('takeovers', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('takeovers', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('takeovers')
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_column('takeovers')
        batch_op.drop_column('request')
