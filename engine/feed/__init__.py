"""The receive path, one step per module: socket (``websocket``) → frames (``frames``) →
decode (``decode``) → id gate (``gate``) → bus (``receiver``), and the connections that
keep it fed (``link``: one slot, ``manager``: shards of slots; ``watch``: their timing
rules as pure functions)."""
