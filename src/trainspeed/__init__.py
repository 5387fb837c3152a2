"""trainspeed: how much faster does this machine's GPU train a neural network than its CPU?

    import trainspeed
    result = trainspeed.run(models=["cnn"], devices=["cpu"], epochs=1, keep_models=True)
    prediction = trainspeed.predict(result.trained("cnn", "cpu"), images)

    # trainspeed run --save-models, then, anywhere:
    model = trainspeed.load_model("trainspeed-results/models/cnn-cpu-cifar10-b32-fp32.safetensors")
    trainspeed.predict(model, ["cat.png", "photo.jpg"]).classes
"""

__version__ = "0.3.0"

__all__ = ["__version__", "run", "predict", "report", "load_model", "save_model", "RunConfig", "RunResult",
           "list_models", "list_datasets"]


def __getattr__(name: str):
    # Imported on first use so that `trainspeed --version` does not pay for importing torch.
    if name == "run":
        from .execute import run
        return run
    if name == "predict":
        from .prediction import predict
        return predict
    if name == "report":
        from .reporting.report import report
        return report
    if name == "load_model":
        from .saved import load_model
        return load_model
    if name == "save_model":
        from .saved import save_model
        return save_model
    if name == "RunConfig":
        from .config import RunConfig
        return RunConfig
    if name == "RunResult":
        from .results import RunResult
        return RunResult
    if name == "list_models":
        from .models import list_models
        return list_models
    if name == "list_datasets":
        from .data import list_datasets
        return list_datasets
    raise AttributeError(f"module 'trainspeed' has no attribute {name!r}")
