"""Binance REST: one client (``client``) paying every call from one weight budget
(``budget``), the exchange clock (``clock_sync``), exchangeInfo (``exchange_info``) and
order-book snapshot polling (``poller``)."""
