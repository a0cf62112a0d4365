"""What UIs pull: the market state of every symbol (``market``, ``candles``), the chart's
candle history from REST (``history``) and per-stream feed health (``health``)."""
