"""The evidence: what the results store holds and the rule that says when it decides a question.

The lowest layer shared by the engine (``experiments``, which writes the store and stops training
on the rule) and ``analysis`` (which reports from it), so that both point down at it and neither
at the other: the run-status vocabulary (``status``), the store's atomic file writes (``files``),
the reader that turns a results folder into one tidy table (``load``, with the training-health
flags of ``health``), the statistics (``stats``) and the group-sequential rule (``sequential``,
``decisions``) that ``run.py ablate --until-decided`` stops on and the report recomputes, and the
one terminal-table helper every command shares (``terminal``). It imports no torch, no model, no
engine and no other package of the project: ``tests/test_layout.py`` checks it.
"""
