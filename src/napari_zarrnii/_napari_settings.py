"""The plugin's napari settings (Preferences > ZarrNii) applied to the chunk cache.

napari builds a settings page from the ``configurations`` of the manifest
(``cache.budget_mib``, ``cache.prefetch``) and saves the values with its own settings.
The reader calls :func:`follow_plugin_settings` when napari is running: the current
values are applied and later changes follow at once.  A budget of 0 means automatic,
so it does not override a budget set through the API or the environment.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["follow_plugin_settings"]

log = logging.getLogger(__name__)

PLUGIN = "napari-zarrnii"
_followed: Any = None


def _apply_budget(mib: Any, *, initial: bool) -> None:
    from .core.cache import set_cache_budget

    value = int(mib or 0)
    if value > 0:
        set_cache_budget(value << 20)
    elif not initial:  # set back to automatic
        set_cache_budget(None)


def _apply_prefetch(enabled: Any) -> None:
    from .core.prefetch import set_prefetch

    set_prefetch(bool(enabled))


def follow_plugin_settings() -> bool:
    """Apply the plugin's napari settings and follow their changes (True if napari has them).

    Does nothing outside napari (``napari`` not imported) and after the first call.
    """
    global _followed
    if _followed is not None:
        return True
    if "napari" not in sys.modules:
        return False
    try:
        from napari.settings import get_plugin_settings

        group = get_plugin_settings(PLUGIN).cache
    except (ImportError, KeyError, AttributeError) as exc:  # older napari: no plugin settings
        log.debug("no napari plugin settings for %s: %s", PLUGIN, exc)
        return False
    _apply_budget(group.budget_mib, initial=True)
    _apply_prefetch(group.prefetch)
    group.events.budget_mib.connect(lambda event: _apply_budget(event.value, initial=False))
    group.events.prefetch.connect(lambda event: _apply_prefetch(event.value))
    _followed = group
    return True
