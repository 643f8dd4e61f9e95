"""`python -m services.intake` runs intake."""

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.production import refuse_development_defaults
from shared.serve import serve

if __name__ == "__main__":
    settings = IntakeSettings()
    refuse_development_defaults(settings)
    serve(create_app(settings), settings)
