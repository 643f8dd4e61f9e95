"""Synchronisation of dossiers with the national public-service portal (Cổng DVC quốc gia)."""
