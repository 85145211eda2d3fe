"""Statistics, tables, figures and the generated report for dyclot results (see docs/analysis.md).

Reads files only, through ``evidence.load`` (the results store's reader, which the engine
shares); never imports the engine, the models or torch. Heavy parts (plots, report)
are imported lazily.
"""
from importlib import import_module

_EXPORTS = {"analyze": "compare", "render": "tables", "to_dict": "tables",
            "build_report": "report", "write_report": "report", "compute_findings": "findings"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
