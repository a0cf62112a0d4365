"""Gap backfill from REST: what the feed missed (trade and aggTrade ids: ``ids``; klines:
``klines``), fetched with the one retry policy (``fetch``), converted to stream events
(``rows``), and restart seeding from the recording's tail (``seed``); ``backfiller``
wires them to the bus."""
