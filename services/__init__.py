"""Motcua\x27s four services; they never import each other."""
