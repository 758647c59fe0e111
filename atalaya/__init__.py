"""Atalaya: fusion and verifiable sovereignty accounting for partner-nation surveillance.

The public surface is small on purpose; most modules are internal. See
``docs/`` and ``DESIGN`` for the map of the system.
"""

__version__ = "0.1.0"
