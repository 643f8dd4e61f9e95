"""`python -m services.notify` runs notify."""

from services.notify.app import create_app
from services.notify.settings import NotifySettings
from shared.production import refuse_development_defaults
from shared.serve import serve

if __name__ == "__main__":
    settings = NotifySettings()
    refuse_development_defaults(settings)
    serve(create_app(settings), settings)
