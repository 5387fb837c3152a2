"""Keras 3's backends as engines: what each needs installed, how its process is set up, and the
backend's own ways to choose a device, wait for its work, read its memory and name its devices.

The parts before import (`missing`, `process_environment`) are pure and run in the parent; a
`Backend` is made in the case's own process, after Keras has been imported with the backend
selected, because Keras reads KERAS_BACKEND once, at its first import.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass

BACKENDS = {"keras-tensorflow": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}
# The modules each engine imports; the extra of the same name installs them.
_MODULES = {"keras-tensorflow": ("keras", "tensorflow"), "keras-jax": ("keras", "jax", "jaxlib"),
            "keras-torch": ("keras", "torch")}


def install_line(engine: str) -> str:
    return f'pip install "trainspeed[{engine}]"'


def missing(engine: str) -> str | None:
    """Why `engine` cannot run here (its packages are not installed), or None. Imports nothing."""
    absent = [name for name in _MODULES[engine] if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return f"{engine} needs {' and '.join(absent)}, not installed here: {install_line(engine)}"


def engines_installed() -> dict[str, str]:
    """Every Keras engine, with its installed packages' versions or why it cannot run here."""
    from importlib.metadata import packages_distributions, version

    distributions = packages_distributions()
    found = {}
    for engine in BACKENDS:
        reason = missing(engine)
        if reason:
            found[engine] = reason
            continue
        versions = [f"{distributions.get(name, [name])[0]} {version(distributions.get(name, [name])[0])}"
                    for name in _MODULES[engine] if name != "jaxlib"]
        found[engine] = "installed: " + ", ".join(versions)
    return found


def process_environment(engine: str, device: str, environ: dict[str, str]) -> dict[str, str]:
    """The case's process environment: its backend chosen before Keras is imported, and only the
    device the case is for visible to the backend (a GPU case's own GPU is already the only one)."""
    environ = {**environ, "KERAS_BACKEND": BACKENDS[engine], "TF_CPP_MIN_LOG_LEVEL": "2"}
    if device == "cpu":
        # A CPU case must not let the backend place work on a GPU, or even initialize one.
        environ["CUDA_VISIBLE_DEVICES"] = ""
        environ["JAX_PLATFORMS"] = "cpu"
    elif engine == "keras-jax":
        # A CPU-only jaxlib would fall back to the CPU with a warning; named, the GPU platform must start.
        environ["JAX_PLATFORMS"] = "cuda"
    return environ


# What puts each backend's GPU support in place, for a GPU case whose backend finds no GPU.
GPU_INSTALL = {"tensorflow": 'pip install "tensorflow[and-cuda]"', "jax": 'pip install "jax[cuda12]"',
               "torch": "a CUDA build of PyTorch (https://pytorch.org/get-started/locally/)"}


@dataclass
class Backend:
    """One backend, imported: Keras's module and the backend's own calls the measurement needs."""

    engine: str
    keras: object

    @property
    def name(self) -> str:
        return BACKENDS[self.engine]

    def scope(self, device: str):
        """Where the model lives and runs: the seeds' `with tf.device('/CPU:0')` on TensorFlow; JAX
        and PyTorch take their default device, which the process's environment has made the case's
        own (`process_environment`). Keras's `keras.device` scope is not used: under it the PyTorch
        backend trains no variable (Keras 3.15: "No gradients provided for any variable")."""
        if self.name == "tensorflow":
            import tensorflow as tf

            return tf.device("/CPU:0" if device == "cpu" else "/GPU:0")
        return contextlib.nullcontext()

    def require_device(self, device: str) -> None:
        """Make sure a GPU case's work can only run on the GPU: TensorFlow's soft placement off (it
        would put an op with no GPU kernel, or everything, on the CPU without a word), and the GPU
        listed by the backend. A CPU figure must never be filed under a GPU's name."""
        from ..errors import DeviceError

        if device == "cpu":
            return
        if self.name == "tensorflow":
            import tensorflow as tf

            tf.config.set_soft_device_placement(False)
        try:
            listed = self.devices()
        except Exception as error:  # noqa: BLE001 - JAX raises when its named platform cannot start
            listed, why = [], f" ({str(error).splitlines()[0][:160]})"
        else:
            why = ""
        if not any(_is_gpu(name) for name in listed):
            raise DeviceError(f"{self.engine} finds no GPU here{why} (it lists {', '.join(listed) or 'nothing'}), "
                              f"so {device} would be trained on the CPU: install {GPU_INSTALL[self.name]}")

    def set_precision(self, mode: str) -> None:
        """fp32 is true fp32 on every backend (TensorFlow and JAX would use TF32 on an Ampere GPU);
        tf32 lets matmuls use it; bf16 is Keras's mixed_bfloat16 policy."""
        tf32 = mode == "tf32"
        if self.name == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_tensor_float_32_execution(tf32)
        elif self.name == "jax":
            import jax

            jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
        else:
            from ..machine import precision

            precision.apply(mode)
        if mode == "bf16":
            self.keras.mixed_precision.set_global_policy("mixed_bfloat16")

    def set_threads(self, threads: int | None) -> None:
        """--cpu-threads: the backend's own setting where it has one; JAX's CPU client has none,
        so its process is bound to that many cores (set before the backend starts its pools)."""
        if threads is None:
            return
        if self.name == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        elif self.name == "torch":
            import torch

            torch.set_num_threads(threads)
        elif hasattr(os, "sched_setaffinity"):
            cores = sorted(os.sched_getaffinity(0))[:threads]
            os.sched_setaffinity(0, cores)

    def synchronize(self, device: str) -> None:
        """Wait until the backend has finished every piece of work it was given."""
        if self.name == "tensorflow":
            import tensorflow as tf

            sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
            if sync is not None and device != "cpu":
                sync()
        elif self.name == "jax":
            import jax

            # Dispatch is asynchronous on the CPU too; every live array is what the steps wrote.
            jax.block_until_ready(jax.live_arrays())
        elif device != "cpu":
            import torch

            from ..machine.devices import synchronize

            synchronize(torch.device(device))

    def reset_peak_memory(self, device: str) -> None:
        with contextlib.suppress(Exception):  # a backend without the counter has no figure to reset
            if device == "cpu":
                return
            if self.name == "tensorflow":
                import tensorflow as tf

                tf.config.experimental.reset_memory_stats("GPU:0")
            elif self.name == "torch":
                import torch

                from ..machine.devices import reset_peak_memory

                reset_peak_memory(torch.device(device))

    def peak_memory_bytes(self, device: str) -> int | None:
        """The device's peak as the backend counts it; the process's for the CPU."""
        if device == "cpu":
            from ..machine.validity import peak_host_memory_bytes

            return peak_host_memory_bytes()
        try:
            if self.name == "tensorflow":
                import tensorflow as tf

                return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
            if self.name == "jax":
                import jax

                stats = jax.devices()[0].memory_stats() or {}
                return int(stats["peak_bytes_in_use"]) if "peak_bytes_in_use" in stats else None
            import torch

            from ..machine.devices import peak_device_memory_bytes

            return peak_device_memory_bytes(torch.device(device))
        except Exception:  # no counter on this backend or device: the figure is absent, not zero
            return None

    def versions(self) -> dict[str, str]:
        found = {"keras": self.keras.__version__}
        for name in {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}[self.name]:
            module = sys.modules.get(name) or importlib.import_module(name)
            found[name] = getattr(module, "__version__", "unknown")
        return found

    def devices(self) -> list[str]:
        """The backend's own device list, as the seeds print tf.config.list_physical_devices()."""
        if self.name == "tensorflow":
            import tensorflow as tf

            return [device.name for device in tf.config.list_physical_devices()]
        if self.name == "jax":
            import jax

            return [f"{device.platform}:{device.id} {device.device_kind}" for device in jax.devices()]
        import torch

        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        return found

    def out_of_memory(self, error: BaseException) -> bool:
        text = f"{type(error).__name__}: {error}"
        return any(sign in text for sign in ("ResourceExhausted", "RESOURCE_EXHAUSTED", "OutOfMemoryError",
                                             "out of memory", "can't allocate memory"))


def _is_gpu(name: str) -> bool:
    """A device as a backend lists it ('/physical_device:GPU:0', 'gpu:0 H100', 'cuda:0 H100') is a GPU."""
    return any(sign in name.lower() for sign in ("gpu", "cuda"))


def import_backend(engine: str) -> Backend:
    """Import Keras with the engine's backend (set in the environment by the parent) and check it.

    A missing package or a Keras older than 3 is the user's to fix: one line with the install line.
    """
    from ..errors import ConfigError

    reason = missing(engine)
    if reason:
        raise ConfigError(reason)
    os.environ["KERAS_BACKEND"] = BACKENDS[engine]
    import keras

    if int(keras.__version__.split(".")[0]) < 3:
        raise ConfigError(f"{engine} needs Keras 3, found Keras {keras.__version__}: {install_line(engine)}")
    if keras.backend.backend() != BACKENDS[engine]:
        raise ConfigError(f"Keras was already imported with the {keras.backend.backend()} backend; "
                          f"{engine} needs a fresh process")
    return Backend(engine, keras)
