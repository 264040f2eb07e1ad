"""Reusable widgets: camera view, joint table, E-STOP button."""
