from engine.config.settings import *  # noqa: F403
from engine.config.settings import ConfigError, Settings, load_settings  # noqa: F401
