"""binance-live engine: streams, decoding, bus, REST — no UI code (see tests/test_architecture)."""

from engine.bus import Bus, Mode, Overflow
from engine.config.settings import ConfigError, Settings, load_settings
from engine.engine import Engine, EngineStatus

__all__ = ["Bus", "ConfigError", "Engine", "EngineStatus", "Mode", "Overflow", "Settings",
           "load_settings"]
