"""Notify: tells citizens the result of their dossiers."""
