"""Built-in filters, each a small module registered as an entry point (``fink_broker.filters``).

``sso_candidates``, ``new_transients``, ``bright_transients`` and
``variable_star_brightening`` are found through entry points like any third-party filter
(see ``pyproject.toml``); nothing imports them from here, so importing this package is
cheap. Each module documents its science case and keeps its thresholds as module constants;
``common`` holds the null-safe column helpers they share.

They read canonical columns (``surveys/fields.py``) and the outputs of the built-in science
modules (``solar_system``, ``xmatch``), never survey-specific fields, so every built-in
filter serves ZTF and Rubin alike.
"""
