"""Built-in science modules, each a small module registered as an entry point.

``solar_system``, ``xmatch``, ``lc_features_ztf``/``lc_features_rubin`` and ``provenance``
are found through ``fink_broker.science_modules`` entry points like any third-party module
(see ``pyproject.toml``); nothing imports them from here, so importing this package is cheap.
"""
