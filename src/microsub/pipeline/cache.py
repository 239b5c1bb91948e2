"""The cache the chapters, the deck and the stages share: joblib, keyed by data and code.

joblib keys a cache on the called function's own code only; :func:`code_digest` of the modules a
computation runs goes into the key too, so an edit to any of them recomputes it, and the digest
of the dataset it reads (:attr:`Context.data_digest`) replaces hashing the data itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import joblib
import pandas as pd

from microsub.pipeline.context import Context, read_pages

T = TypeVar("T")


def code_digest(*modules: ModuleType) -> str:
    """Digest of the source files of ``modules`` (a package counts with every ``.py`` file
    under its folder, sub-packages included)."""
    h = hashlib.sha256()
    for module in modules:
        path = Path(str(module.__file__))
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for file in files:
            h.update(file.relative_to(path.parent).as_posix().encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def cached(
    ctx: Context,
    func: Callable[..., T],
    key: tuple[Any, ...],
    *,
    data: tuple[str, ...] = (),
    load: Callable[[], tuple[Any, ...]] = tuple,
    force: bool = False,
) -> T:
    """``func(*load(), *key)`` through the joblib cache in ``settings.cache_dir``.

    The arguments ``load`` returns (the pages table, say), named ``data`` in ``func``'s
    signature, are left out of the cache key: ``key`` must identify them (the dataset's digest)
    together with the code that computes (:func:`code_digest`). A cache hit therefore neither
    loads nor hashes the data. ``force`` recomputes without the cache.
    """
    if force:
        return func(*load(), *key)
    memory = joblib.Memory(ctx.settings.cache_dir, verbose=0)
    func_cached = memory.cache(func, ignore=list(data))
    blank = (None,) * len(data)
    if func_cached.check_call_in_cache(*blank, *key):
        return func_cached(*blank, *key)
    return func_cached(*load(), *key)


def cached_on_pages(
    ctx: Context, func: Callable[[pd.DataFrame, int, str, str], T], digest: str, force: bool
) -> T:
    """``func(pages, seed, data_digest, code digest)`` through :func:`cached`, the pages read
    from the lake only on a cache miss."""
    return cached(
        ctx,
        func,
        (ctx.settings.seed, ctx.data_digest, digest),
        data=("pages",),
        load=lambda: (read_pages(ctx).to_pandas(),),
        force=force,
    )
