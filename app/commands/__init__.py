"""Headless `piper-ws` commands, one module each (see app/cli.py)."""
