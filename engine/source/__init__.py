"""What feeds the bus: one interface (``base``) and its two implementations, the live
feed (``live``: WebSocket + REST and everything that keeps them whole) and a recording
played back (``replay``)."""
