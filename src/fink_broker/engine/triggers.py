"""The ``trigger`` setting: ``availableNow`` for bounded runs, a processing time otherwise."""

from __future__ import annotations

from typing import Any


def trigger_kwargs(trigger: str) -> dict[str, Any]:
    """Keyword arguments of ``DataStreamWriter.trigger`` for a config value.

    >>> trigger_kwargs("availableNow"), trigger_kwargs("10 seconds"), trigger_kwargs("0")
    ({'availableNow': True}, {'processingTime': '10 seconds'}, {'processingTime': '0 seconds'})
    """
    value = trigger.strip()
    if value.lower() in {"availablenow", "available_now", "once"}:
        return {"availableNow": True}
    if value.replace(".", "", 1).isdigit():
        value = f"{value} seconds"
    return {"processingTime": value}
