"""Contracts and plumbing shared by Motcua's four services."""
