"""Foundations every layer may use: errors, text, time, settings, the catalogue."""
