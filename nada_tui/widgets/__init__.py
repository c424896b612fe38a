"""Widgets of the nada-tui app."""
