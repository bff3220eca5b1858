"""Azure Functions entry point: composition only. Routes come from routes.ROUTES."""

import azure.functions as func

# Importing the HTTP-streaming extension switches every HTTP function of the app to
# Starlette Request/Response types; all handlers are written for them.
import azurefunctions.extensions.http.fastapi  # noqa: F401

from metering import timer
from routes import ROUTES

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for spec in ROUTES:
    app.route(route=spec.route, methods=list(spec.methods), auth_level=func.AuthLevel.ANONYMOUS)(spec.handler)

# Hourly Marketplace metering submission (minute 5, UTC); a missed run loses nothing.
app.timer_trigger(schedule=timer.SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)(
    timer.submit_metering
)
