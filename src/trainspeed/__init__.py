"""trainspeed: how much faster does this machine's GPU train a neural network than its CPU?

    import trainspeed
    result = trainspeed.run(models=["cnn"], devices=["cpu"], epochs=1, keep_models=True)
    prediction = trainspeed.predict(result.trained("cnn", "cpu"), images)

    # trainspeed run --save-models, then, anywhere:
    model = trainspeed.load_model("trainspeed-results/models/cnn-cpu-cifar10-b32-fp32.safetensors")
    trainspeed.predict(model, ["cat.png", "photo.jpg"]).classes
"""

import importlib
import inspect

__version__ = "0.3.0"

__all__ = ["__version__", "run", "predict", "report", "load_model", "save_model", "RunConfig", "RunResult",
           "list_models", "list_datasets"]


# Where each public name lives: imported on first use, so that `trainspeed --version` does not pay
# for importing torch.
_PUBLIC = {"run": "execute", "predict": "prediction", "report": "reporting.report", "load_model": "saved",
           "save_model": "saved", "RunConfig": "config", "RunResult": "results", "list_models": "models",
           "list_datasets": "data"}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'trainspeed' has no attribute {name!r}")
    found = getattr(importlib.import_module(f".{module}", __name__), name)
    if inspect.isfunction(found):
        # A Python caller passed keywords, not flags: its errors name them so.
        from .errors import in_python_terms

        found = in_python_terms(found)
    globals()[name] = found
    return found
