"""evals, eval runs and their items; batches and their request lines

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 17:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'evals',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=512), nullable=False),
        sa.Column('data_source_config', sa.Text(), nullable=False),
        sa.Column('testing_criteria', sa.Text(), nullable=False),
        sa.Column('metadata', sa.Text(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_evals_project_id', 'evals', ['project_id'])
    op.create_table(
        'eval_runs',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('eval_id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=512), nullable=False),
        sa.Column('model', sa.String(length=512), nullable=False),
        sa.Column('data_source', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('metadata', sa.Text(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('started_at', sa.BigInteger(), nullable=True),
        sa.Column('finished_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['eval_id'], ['evals.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_eval_runs_eval_id_id', 'eval_runs', ['eval_id', 'id'])
    op.create_index('ix_eval_runs_status', 'eval_runs', ['status'])
    op.create_table(
        'eval_run_items',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('item_index', sa.Integer(), nullable=False),
        sa.Column('item', sa.Text(), nullable=False),
        sa.Column('given_sample', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('sample', sa.Text(), nullable=True),
        sa.Column('results', sa.Text(), nullable=True),
        sa.Column('usage', sa.Text(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['eval_runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('run_id', 'item_index', name='uq_eval_run_items_run_index'),
    )
    op.create_index('ix_eval_run_items_run_id_status', 'eval_run_items', ['run_id', 'status'])
    op.create_table(
        'batches',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.String(length=64), nullable=False),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('input_file_id', sa.String(length=64), nullable=False),
        sa.Column('completion_window', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('output_file_id', sa.String(length=64), nullable=True),
        sa.Column('error_file_id', sa.String(length=64), nullable=True),
        sa.Column('errors', sa.Text(), nullable=True),
        sa.Column('metadata', sa.Text(), nullable=True),
        sa.Column('model', sa.String(length=512), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('in_progress_at', sa.BigInteger(), nullable=True),
        sa.Column('expires_at', sa.BigInteger(), nullable=True),
        sa.Column('finalizing_at', sa.BigInteger(), nullable=True),
        sa.Column('completed_at', sa.BigInteger(), nullable=True),
        sa.Column('failed_at', sa.BigInteger(), nullable=True),
        sa.Column('cancelling_at', sa.BigInteger(), nullable=True),
        sa.Column('cancelled_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_batches_project_id', 'batches', ['project_id'])
    op.create_index('ix_batches_status', 'batches', ['status'])
    op.create_table(
        'batch_requests',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('batch_id', sa.String(length=64), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('custom_id', sa.String(length=512), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('output', sa.Text(), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_batch_requests_batch_id_status', 'batch_requests', ['batch_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_batch_requests_batch_id_status', table_name='batch_requests')
    op.drop_table('batch_requests')
    op.drop_index('ix_batches_status', table_name='batches')
    op.drop_index('ix_batches_project_id', table_name='batches')
    op.drop_table('batches')
    op.drop_index('ix_eval_run_items_run_id_status', table_name='eval_run_items')
    op.drop_table('eval_run_items')
    op.drop_index('ix_eval_runs_status', table_name='eval_runs')
    op.drop_index('ix_eval_runs_eval_id_id', table_name='eval_runs')
    op.drop_table('eval_runs')
    op.drop_index('ix_evals_project_id', table_name='evals')
    op.drop_table('evals')
