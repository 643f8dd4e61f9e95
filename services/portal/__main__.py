"""`python -m services.portal` runs the portal."""

from services.portal.app import create_app
from services.portal.settings import PortalSettings
from shared.production import refuse_development_defaults
from shared.serve import serve

if __name__ == "__main__":
    settings = PortalSettings()
    refuse_development_defaults(settings)
    serve(create_app(settings), settings)
