"""Audit: records every event, in order, for each dossier."""
