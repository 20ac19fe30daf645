"""``leases.Heartbeat``, the timer every executor of leased work shares: it renews what its server holds,
reports a row another server took over as lost (once), and then runs the executor's sweep."""

from __future__ import annotations

import time

from sqlalchemy import update


def _response(db, response_id: str, worker_id: str | None, lease: float | None) -> None:
    from tuneforge.db.models import ResponseRow
    from tuneforge.projects import DEFAULT_PROJECT, get_or_create_project

    with db.session() as session:
        project = get_or_create_project(session, DEFAULT_PROJECT)
        session.add(ResponseRow(id=response_id, project_id=project.id, status="in_progress", model="m", stored=True,
                                background=True, worker_id=worker_id, lease_expires_at=lease))
        session.commit()


def test_renews_reports_lost_rows_and_sweeps(settings):
    from tuneforge.db import leases
    from tuneforge.db.models import ResponseRow
    from tuneforge.db.session import Database

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        now = time.time()
        _response(db, "resp_kept", "me", now + 1)
        _response(db, "resp_taken", "me", now + 1)
        sweeps, lost = [], []
        beat = leases.Heartbeat(db, "me", 30.0, "test", sweep=lambda: sweeps.append(1), on_lost=lost.append)
        beat.hold(ResponseRow, "resp_kept")
        beat.hold(ResponseRow, "resp_taken")
        with db.session() as session:  # another server took one over (this one stalled past its lease)
            session.execute(update(ResponseRow).where(ResponseRow.id == "resp_taken").values(worker_id="other"))
            session.commit()
        beat.beat()
        assert lost == ["resp_taken"] and beat.lost("resp_taken") and not beat.lost("resp_kept")
        assert beat.held() == {"resp_kept"} and sweeps == [1]
        with db.session() as session:
            kept, taken = session.get(ResponseRow, "resp_kept"), session.get(ResponseRow, "resp_taken")
            assert kept.lease_expires_at > now + 20  # renewed for a whole lease
            assert taken.worker_id == "other" and taken.lease_expires_at < now + 2  # left alone
        beat.beat()
        assert lost == ["resp_taken"] and sweeps == [1, 1]  # reported once
        assert beat.drop("resp_taken") is None and not beat.lost("resp_taken")
        assert beat.drop("resp_kept") is ResponseRow and beat.held() == set()
    finally:
        db.dispose()


def test_the_thread_beats_until_closed(settings):
    from tuneforge.db import leases
    from tuneforge.db.session import Database
    from tuneforge.testing import wait_until

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    try:
        sweeps = []
        beat = leases.Heartbeat(db, "me", 0.15, "test", sweep=lambda: sweeps.append(1))
        beat.start()
        beat.start()  # idempotent
        wait_until(lambda: len(sweeps) >= 3, 5, "three beats")
        beat.close()
        time.sleep(0.2)
        count = len(sweeps)
        time.sleep(0.3)
        assert len(sweeps) == count
        beat.start()  # never after close
        time.sleep(0.2)
        assert len(sweeps) == count
    finally:
        db.dispose()
