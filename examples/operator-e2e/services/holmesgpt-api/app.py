"""The HolmesGPT API stand-in: answers /healthz once its dependencies import."""

import flask
import openai  # noqa: F401  (a heavy dependency, imported as the real service does)
import requests  # noqa: F401

app = flask.Flask(__name__)


@app.get("/healthz")
def healthz():
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
