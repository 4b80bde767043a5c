"""Input channels: the REST channel with input checks; WeChat and web chat later."""
