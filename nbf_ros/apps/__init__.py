"""Entry points: command lines and processes; nothing in the runtime imports this package."""
