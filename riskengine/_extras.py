"""Optional features and the extra that installs each.

The core install (``pip install riskengine``) is what ``Engine.score()`` needs. The audit
sink, analytics, dashboard, simulator, model training and the Redis store each live behind
an extra; importing one of them without its extra raises :class:`MissingExtraError`, which
says what to install, instead of a bare ``No module named 'polars'``.

>>> EXTRAS["analytics"]
('duckdb', 'polars', 'pyarrow')
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "redis": ("redis",),
    "audit": ("pyarrow",),
    "analytics": ("duckdb", "polars", "pyarrow"),
    "dashboard": ("streamlit", "altair", "duckdb", "polars", "pyarrow"),
    "sim": ("polars", "pyarrow", "numpy", "tqdm", "mmdb_writer", "netaddr", "matplotlib"),
    "model": ("sklearn", "joblib", "polars", "pyarrow", "numpy", "tqdm"),
    "distributed": ("distributed", "polars", "pyarrow", "numpy", "tqdm", "mmdb_writer", "netaddr", "matplotlib"),
    "metrics": ("prometheus_client",),
    "otel": ("opentelemetry",),
    "s3": ("pyarrow", "fsspec"),
}
EXTRAS["all"] = tuple(sorted({name for names in EXTRAS.values() for name in names}))
"""Import names (not distribution names) each extra provides, as pyproject.toml declares them."""


class MissingExtraError(ModuleNotFoundError):
    """A feature's optional dependency is not installed; the message names the extra.

    A subclass of ``ModuleNotFoundError`` (``name`` is the missing module), so code that
    already catches ``ImportError`` keeps working.
    """

    def __init__(self, module: str, extra: str, feature: str | None = None) -> None:
        what = feature or f"this feature of riskengine (the [{extra}] extra)"
        super().__init__(f"{what} needs the {module!r} package, which is not installed: "
                         f'pip install "riskengine[{extra}]"', name=module)
        self.extra = extra
        self.feature = feature


def _check(extra: str) -> tuple[str, ...]:
    """The extras named by ``extra`` (one name, or several joined by commas as pip spells them)."""
    names = tuple(extra.split(","))
    for name in names:
        if name not in EXTRAS:
            raise ValueError(f"unknown extra {name!r}; known: {', '.join(sorted(EXTRAS))}")
    return names


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or a broken finder
        return False


def missing(extra: str) -> list[str]:
    """The import names of ``extra`` that are not installed (``[]`` when it is complete).

    Looks the modules up without importing them.

    >>> missing("audit") in ([], ["pyarrow"])
    True
    """
    modules = dict.fromkeys(m for name in _check(extra) for m in EXTRAS[name])
    return [m for m in modules if not _installed(m)]


def require(*modules: str, extra: str, feature: str | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module in ``modules`` is importable.

    ``modules`` default to all of the extra's packages. Nothing is imported.

    >>> require("json", extra="audit")
    >>> require("riskengine_no_such_module", extra="analytics")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskengine._extras.MissingExtraError: ... pip install "riskengine[analytics]"
    """
    names = _check(extra)
    for module in modules or dict.fromkeys(m for name in names for m in EXTRAS[name]):
        if not _installed(module):
            raise MissingExtraError(module, extra, feature)


@contextmanager
def extra(name: str, *, feature: str | None = None) -> Iterator[None]:
    """Turn a missing third-party module imported inside the block into :class:`MissingExtraError`.

    Used around the heavy imports at the top of each optional module::

        with extra("analytics", feature="riskengine.analytics"):
            import duckdb
            import polars as pl

    A missing ``riskengine`` module is a packaging bug, not a missing extra: it is re-raised
    as it is.
    """
    _check(name)
    try:
        yield
    except MissingExtraError:
        raise
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if not top or top == "riskengine":
            raise
        raise MissingExtraError(top, name, feature) from exc


__all__ = ["EXTRAS", "MissingExtraError", "extra", "missing", "require"]
