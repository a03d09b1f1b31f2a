"""python-telegram-bot handlers, one module per area."""
