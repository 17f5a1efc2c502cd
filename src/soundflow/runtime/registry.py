"""The bundle in the MLflow model registry: a pyfunc model whose artifact is the bundle folder.

`mlflow.pyfunc.load_model("models:/soundflow-tiny@current").predict(pandas.DataFrame({"audio": [path]}))`
returns one list of events per row (optional columns: instruction, lang, scheduler).
"""
from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from soundflow.runtime.bundle import load_bundle

        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[list[dict]]:
        from soundflow.audio import read_audio
        from soundflow.runtime.session import run_stream

        out = []
        for row in model_input.to_dict("records"):
            audio = read_audio(row["audio"], sr=self.bundle.settings.sample_rate)
            events = run_stream(self.bundle, audio, row.get("instruction"), row.get("lang"),
                                row.get("scheduler") or "sync")
            out.append([e.public() for e in events])
        return out


def register_bundle(bundle_dir: Path, model_name: str, alias: str, run_id: str) -> str:
    """Log the bundle as a pyfunc model in run `run_id`, register it, point `alias` at it; returns the version."""
    requirements = [f"soundflow @ file://{Path(__file__).resolve().parents[3]}"]
    with mlflow.start_run(run_id=run_id, nested=True):
        info = mlflow.pyfunc.log_model(name="bundle", python_model=BundleModel(),
                                       artifacts={"bundle": str(bundle_dir)}, pip_requirements=requirements,
                                       registered_model_name=model_name)
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(model_name, alias, version)
    return version
