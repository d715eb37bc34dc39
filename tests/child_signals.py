"""Signal dispositions for the CLI processes that tests interrupt."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Give a child the SIGINT disposition of a foreground terminal (``preexec_fn``).

    A child of a background job inherits SIGINT ignored (POSIX), and Python then never raises
    KeyboardInterrupt: a test that presses Ctrl-C must not depend on how pytest was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
