"""responses, conversations and their upstream ownership

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'responses',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('completed_at', sa.BigInteger(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('model', sa.String(length=512), nullable=False),
        sa.Column('stored', sa.Boolean(), nullable=False),
        sa.Column('background', sa.Boolean(), nullable=False),
        sa.Column('previous_response_id', sa.String(length=64), nullable=True),
        sa.Column('conversation_id', sa.String(length=64), nullable=True),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('input_items', sa.Text(), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.Column('usage', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('incomplete_details', sa.Text(), nullable=True),
        sa.Column('metadata', sa.Text(), nullable=True),
        sa.Column('control', sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index('ix_responses_project_id_id', ['project_id', 'id'], unique=False)
        batch_op.create_index('ix_responses_status', ['status'], unique=False)

    op.create_table(
        'conversations',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('metadata', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversations_project_id'), ['project_id'], unique=False)

    op.create_table(
        'conversation_items',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('conversation_id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('item', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('conversation_items', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_items_conversation_id_id', ['conversation_id', 'id'], unique=False)

    op.create_table(
        'upstream_response_objects',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('upstream', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('upstream_response_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_response_objects_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('upstream_response_objects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upstream_response_objects_project_id'))
    op.drop_table('upstream_response_objects')
    with op.batch_alter_table('conversation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_items_conversation_id_id')
    op.drop_table('conversation_items')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversations_project_id'))
    op.drop_table('conversations')
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index('ix_responses_status')
        batch_op.drop_index('ix_responses_project_id_id')
    op.drop_table('responses')
