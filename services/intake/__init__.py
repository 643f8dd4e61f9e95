"""Intake: the HTTP front door where dossiers are submitted and validated."""
