"""Recordings: where files live (``layout``), one schema per table (``schemas``), the
crash-safe write protocol (``segments``), the recorder (``recorder``), reading back
(``reader``, ``tail``) and replaying onto the bus (``replay``)."""
