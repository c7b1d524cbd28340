"""``switchyard load``: drive the API with HTTP load and measure it end to end."""
