"""The default settings file, installed as the package ``binance_live_config``.

Not code: this file only makes ``config/`` an importable package so that
``config/settings.yaml`` ships with the package (pyproject.toml maps
``binance_live_config`` to this folder) and ``engine.config`` can find it with
``importlib.resources`` from any directory, installed normally or editable.
"""
