"""`python -m services.audit` runs audit."""

from services.audit.app import create_app
from services.audit.settings import AuditSettings
from shared.serve import serve

if __name__ == "__main__":
    settings = AuditSettings()
    serve(create_app(settings), settings)
