"""The plugin's napari settings (Preferences > ZarrNii) applied to the chunk cache.

napari builds a settings page from the ``configurations`` of the manifest
(``cache.budget_mib``, ``cache.prefetch``) and saves the values in
``<napari config dir>/napari-zarrnii.yaml``.  The reader calls
:func:`follow_plugin_settings` when napari is running: the saved values are applied at
once (a small file read), and napari's live settings object, whose construction
re-reads every plugin manifest (a few hundred ms), is attached on a background thread
so that later changes in Preferences apply immediately without slowing the first open.
A budget of 0 means automatic: it does not override a budget set through the API or
the environment.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["follow_plugin_settings"]

log = logging.getLogger(__name__)

PLUGIN = "napari-zarrnii"
_started = False
_followed: Any = None
_lock = threading.Lock()


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


def _saved_values() -> dict[str, Any]:
    """The ``cache`` values napari saved for this plugin ({} if none)."""
    try:
        from napari.settings import _napari_settings

        cfg = _napari_settings._CFG_PATH
        if not cfg:
            return {}
        path = Path(cfg).parent / f"{PLUGIN}.yaml"
        if not path.is_file():
            return {}
        import yaml

        saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (ImportError, AttributeError, OSError, ValueError) as exc:  # yaml errors are ValueError
        log.debug("napari settings of %s not read: %s", PLUGIN, exc)
        return {}
    group = saved.get("cache") if isinstance(saved, dict) else None
    return group if isinstance(group, dict) else {}


def attach() -> bool:
    """Apply napari's live plugin settings and follow their changes (True if attached)."""
    global _followed
    with _lock:
        if _followed is not None:
            return True
        try:
            from napari.settings import get_plugin_settings

            group = get_plugin_settings(PLUGIN).cache
        except (ImportError, KeyError, AttributeError) as exc:  # napari without plugin settings
            log.debug("no napari plugin settings for %s: %s", PLUGIN, exc)
            return False
        _apply_budget(group.budget_mib, initial=True)
        _apply_prefetch(group.prefetch)
        group.events.budget_mib.connect(lambda event: _apply_budget(event.value, initial=False))
        group.events.prefetch.connect(lambda event: _apply_prefetch(event.value))
        _followed = group
        return True


def follow_plugin_settings(*, background: bool = True) -> bool:
    """Apply the plugin's napari settings and follow their changes, once per process.

    Does nothing outside napari (``napari`` not imported).  The saved values apply
    now; napari's settings object is attached on a background thread (or now, with
    ``background=False``).  Returns False outside napari.
    """
    global _started
    if "napari" not in sys.modules:
        return False
    with _lock:
        if _started:
            return True
        _started = True
    saved = _saved_values()
    if "budget_mib" in saved:
        _apply_budget(saved["budget_mib"], initial=True)
    if "prefetch" in saved:
        _apply_prefetch(saved["prefetch"])
    if background:
        threading.Thread(target=attach, name="zarrnii-settings", daemon=True).start()
    else:
        attach()
    return True
