"""The study's definition, once: grids and the plan, the questions they answer, the published claims.

Imports no torch and no engine: ``experiments`` (which runs it), ``analysis`` and the report read it.
"""
