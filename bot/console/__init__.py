"""The staff console for human negotiators: `python -m bot.console`."""

from bot.console.app import create_app

__all__ = ["create_app"]
