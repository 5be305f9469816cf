"""Sentinel: always pending, so that every `yoyo apply` runs post-apply.py.

yoyo runs post-apply hooks only when at least one migration is applied. post-apply.py re-applies
sql/functions and sql/views and then un-marks this migration, so the next `yoyo apply` finds it
pending again. The step itself does nothing; `yoyo list` shows it as pending by design.
"""

from yoyo import step


def nothing(conn):
    """The work happens in post-apply.py."""


steps = [step(nothing)]
