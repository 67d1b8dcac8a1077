"""The ``salvage`` command line, one module per command group.

- :mod:`~flows.cli.app`: the parser and ``main`` (exit codes);
- :mod:`~flows.cli.common`: what the commands share (``UsageError``, run options, a replay
  with its summary);
- :mod:`~flows.cli.demo`, :mod:`~flows.cli.simulate`, :mod:`~flows.cli.replay`,
  :mod:`~flows.cli.policy`, :mod:`~flows.cli.decisions` (``backtest``, ``import``),
  :mod:`~flows.cli.live` (``run``, ``config``, ``topics``, ``produce``, ``review``,
  ``dispatch``, ``webhook``), :mod:`~flows.cli.state` (``context``, ``case``),
  :mod:`~flows.cli.report`.

No command module imports this package's ``__init__``: they import
:mod:`flows.cli.common`, and :mod:`flows.cli.app` imports them.
"""

from flows.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
