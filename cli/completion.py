"""Shell completion of flag values (typer ``autocompletion`` callbacks): registry models (names and
Hugging Face ids), draft kinds, hardware profiles and engines.  Commands and flags complete
through typer itself (``magicdec-model --install-completion``).  A value that is a path gets no
names back, so the shell completes file names instead."""

from __future__ import annotations


def _starting(names: list[str], incomplete: str) -> list[str]:
    low = incomplete.lower()
    return [n for n in names if n.lower().startswith(low)]


def complete_model(incomplete: str) -> list[str]:
    """Registry names, then the records' Hugging Face ids, that start with ``incomplete``."""
    from magicdec_model.perfmodel.architecture import builtin_model_names, get_model

    names = builtin_model_names()
    return _starting(names + [get_model(n).hf_id for n in names if get_model(n).hf_id], incomplete)


def complete_draft(incomplete: str) -> list[str]:
    """Draft kinds (self, eagle, mtp, ngram), then registry models."""
    return _starting(["self", "eagle", "mtp", "ngram"], incomplete) + complete_model(incomplete)


def complete_hardware(incomplete: str) -> list[str]:
    """Shipped hardware profiles."""
    from magicdec_model.perfmodel.hardware import builtin_hardware_names

    return _starting(builtin_hardware_names(), incomplete)


def complete_engine(incomplete: str) -> list[str]:
    """Shipped engine profiles."""
    from magicdec_model.perfmodel.engine import builtin_engine_names

    return _starting(builtin_engine_names(), incomplete)
