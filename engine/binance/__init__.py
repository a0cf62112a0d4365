"""Pure wire knowledge of Binance spot: stream names, REST weights, REST row types and the
WebSocket control protocol. No I/O; everything else builds on these definitions."""
