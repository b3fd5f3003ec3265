"""alerthub: a regional hub for sharing threat and disinformation alerts."""

__version__ = "0.1.0"
