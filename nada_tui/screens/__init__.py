"""Screens of the nada-tui app."""
