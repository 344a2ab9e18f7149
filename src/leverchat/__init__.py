"""leverchat: a terminal chat for local language models, built around inference control."""

__version__ = "0.1.0"
