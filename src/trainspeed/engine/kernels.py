"""Linear layers whose three GEMMs use the kernels measured fastest on this machine.

A dense layer's training step is three matrix products: the forward y = x W^T + b, the input gradient
gy W and the weight gradient gy^T x. PyTorch runs all three on MKL, whose fp32 GEMMs are tuned for
Intel: on an AMD EPYC the ann's weight gradient took 9.9 ms per step and its first forward 5.9 ms,
where oneDNN did that forward in 3.9. Which library (and operand orientation) wins depends on the
vendor, the cores and the shapes, so, as cuDNN's benchmark mode does for convolutions, `tune` times
every candidate on the layer's real shapes at the start of a case, outside timed epochs, and keeps
the fastest. Never slower than stock nn.Linear: its kernels ("mkl") are always candidates, the
reference the others must agree with, and the choice unless another wins by a clear margin.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .updates import UPDATE, UPDATE_CANDIDATES, plain_sgd_group, update_in_backward

STOCK = "mkl"
PRODUCTS = ("forward", "input gradient", "weight gradient")


def _onednn(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """a b^T (+ bias) by oneDNN's inner product; it takes strided operands, so no copies."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def forward_mkl(x, weight, bias):
    return x.mm(weight.t()) if bias is None else torch.addmm(bias, x, weight.t())  # what F.linear runs


def forward_mkl_nt(x, weight, bias):
    # (W x^T + b)^T, then a copy even of one row: .contiguous() gives a view there, which ReLU_ may not change.
    product = weight.mm(x.t()) if bias is None else torch.addmm(bias.unsqueeze(1), weight, x.t())
    return product.t().clone(memory_format=torch.contiguous_format)


def forward_onednn(x, weight, bias):
    return _onednn(x, weight, bias)


def input_gradient_mkl(gy, weight):
    return gy.mm(weight)


def input_gradient_onednn(gy, weight):
    return _onednn(gy, weight.t(), None)  # gy (W^T)^T: a transposed view, measured faster than a copy


def weight_gradient_mkl(gy, x):
    return gy.t().mm(x)  # autograd's own form for nn.Linear


def weight_gradient_mkl_nn(gy, x):
    # The small [out, batch] operand made contiguous, so the GEMM reads both operands row by row.
    return gy.t().contiguous().mm(x)


def weight_gradient_mkl_nt(gy, x):
    # (x^T gy)^T: the other orientation of the GEMM, paying a transposed copy of the result.
    return x.t().mm(gy).t().contiguous()


def weight_gradient_onednn(gy, x):
    return _onednn(gy.t(), x.t(), None)


# The candidates for each product, by name; "mkl" first: it is stock PyTorch and the reference.
CANDIDATES: dict[str, dict[str, Callable[..., torch.Tensor]]] = {
    "forward": {"mkl": forward_mkl, "mkl-nt": forward_mkl_nt, "onednn": forward_onednn},
    "input gradient": {"mkl": input_gradient_mkl, "onednn": input_gradient_onednn},
    "weight gradient": {"mkl": weight_gradient_mkl, "mkl-nn": weight_gradient_mkl_nn,
                        "mkl-nt": weight_gradient_mkl_nt, "onednn": weight_gradient_onednn},
    UPDATE: UPDATE_CANDIDATES,  # tried only for layers a plain SGD trains (engine/updates.py)
}


class _TunedLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, forward_kernel, input_kernel, weight_kernel, update_group):
        ctx.save_for_backward(x, weight)
        ctx.kernels = (input_kernel, weight_kernel)
        ctx.update = (update_group, weight, bias)
        return CANDIDATES["forward"][forward_kernel](x, weight, bias)

    @staticmethod
    def backward(ctx, gy):  # not once_differentiable: that wrapper alone costs ~6 us per layer and step
        x, weight = ctx.saved_tensors
        input_kernel, weight_kernel = ctx.kernels
        gy = gy.contiguous()  # a no-op for the gradients these layers receive; candidates were verified on such
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:  # not for a first layer: its input is data
            gx = CANDIDATES["input gradient"][input_kernel](gy, weight)
        group, parameter, bias = ctx.update
        # After the input gradient, which needs the weights as the forward saw them.
        if group is not None and ctx.needs_input_grad[1] and update_in_backward(group, gy, x, parameter, bias):
            return gx, None, None, None, None, None, None
        if ctx.needs_input_grad[1]:
            gw = CANDIDATES["weight gradient"][weight_kernel](gy, x)
        if ctx.needs_input_grad[2]:
            gb = gy.sum(0)
        return gx, gw, gb, None, None, None, None


def _tunable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Only plain fp32 CPU math is tuned; autocast, other types and devices get F.linear as is."""
    return (x.dtype == torch.float32 and weight.dtype == torch.float32 and x.device.type == "cpu"
            and weight.device.type == "cpu" and x.layout == torch.strided and not torch.is_autocast_enabled("cpu"))


class TunedLinear(nn.Linear):
    """nn.Linear with a chosen kernel for each of its three products (`kernels`, by product).

    The same parameters and state-dict keys as the nn.Linear it replaces (see `from_linear`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None,
                 kernels: dict[str, str] | None = None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.update_group: dict | None = None  # an SGD group whose update the backward does (updates.py)
        self.set_kernels(kernels or {})

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernels: dict[str, str] | None = None) -> TunedLinear:
        """A TunedLinear holding `linear`'s own Parameter objects, so optimizers built on them still work."""
        # Built on the meta device: its own parameters are placeholders, never allocated or initialized.
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, device="meta", kernels=kernels)
        module.weight = linear.weight
        module.bias = linear.bias
        module.train(linear.training)
        return module

    def set_kernels(self, kernels: dict[str, str]) -> None:
        """Use these kernels (product -> name); a product not named, or an unknown name, gets "mkl"."""
        self.kernels = {product: name if (name := kernels.get(product)) in CANDIDATES[product] else STOCK
                        for product in PRODUCTS}
        # Stock everywhere: F.linear itself, sparing the ~10 us per layer of a Python autograd function.
        self.stock = all(name == STOCK for name in self.kernels.values()) and self.update_group is None

    @property
    def key(self) -> str:
        """The shape that decides its kernels' speed, as named in a Tuning."""
        return f"linear {self.in_features}->{self.out_features}" + ("" if self.bias is not None else " no bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stock or not _tunable(x, self.weight):
            return F.linear(x, self.weight, self.bias)
        flat = x if x.dim() == 2 else x.reshape(-1, self.in_features)
        forward_kernel = self.kernels["forward"]
        needs_grad = x.requires_grad or self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad)
        if torch.is_grad_enabled() and needs_grad:
            y = _TunedLinearFunction.apply(flat, self.weight, self.bias, forward_kernel,
                                           self.kernels["input gradient"], self.kernels["weight gradient"],
                                           self.update_group)
        else:
            y = CANDIDATES["forward"][forward_kernel](flat, self.weight, self.bias)
        return y if x.dim() == 2 else y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", kernels=" + ", ".join(f"{p}: {n}" for p, n in self.kernels.items())


@dataclass
class Tuning:
    """What a trial chose (key "linear IN->OUT PRODUCT" -> kernel), why, and what it cost."""

    choices: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one line per product: ms per candidate, drops and why
    seconds: float = 0.0


def _swap(network: nn.Module, choices: dict[str, str]) -> list[TunedLinear]:
    """Replace every CPU nn.Linear under `network` by a TunedLinear (in place); all the tuned ones."""
    if type(network) is nn.Linear:
        raise TypeError("tune and apply replace the Linear layers inside a network; wrap a lone Linear in one")
    replaced: dict[nn.Module, TunedLinear] = {}  # by identity: a layer used in two places stays one layer
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            # Exactly nn.Linear: a subclass (e.g. attention's out_proj) may be read by its owner in other ways.
            if type(child) is nn.Linear and child.weight.device.type == "cpu":
                if child not in replaced:
                    replaced[child] = TunedLinear.from_linear(child)
                setattr(parent, name, replaced[child])
            elif isinstance(child, TunedLinear) and child.weight.device.type == "cpu":
                replaced[child] = child
    for layer in replaced.values():
        layer.set_kernels({product: choices.get(f"{layer.key} {product}", STOCK) for product in PRODUCTS})
    return list(replaced.values())


def apply(network: nn.Module, choices: dict[str, str]) -> None:
    """Swap in TunedLinear layers with these choices and no trial (a case's later repeats reuse the
    first's, so that every repeat times the same kernels); unknown keys or names get "mkl"."""
    _swap(network, choices)


def median_seconds(kernels: dict[str, Callable[[], object]], *, calls: int,
                   clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Each kernel's median time over `calls` timed calls (CPU work: no device to synchronize).

    The calls take turns (a, b, c, a, b, c, ...): a load that comes and goes on a shared machine,
    or a core taken away for a scheduler tick, then falls on every candidate alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in kernels}
    for _ in range(calls):
        for name, kernel in kernels.items():
            start = clock()
            kernel()
            samples[name].append(clock() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


# A candidate replaces mkl only when faster by both: the margin covers the trial's timing noise
# (never slower matters more than a few percent of one product; the wins seen on AMD were 30% and
# more), the floor the Python autograd function a tuned layer runs (about 10 us per layer and step).
MARGIN = 0.10
MIN_GAIN_S = 20e-6


def choose(seconds: dict[str, float], *, margin: float = MARGIN, min_gain_s: float = MIN_GAIN_S) -> str:
    """The kernel to use given each verified candidate's median time: the fastest, if it beats mkl
    by `margin` of mkl's time and by `min_gain_s`; otherwise mkl (also when mkl was not measured)."""
    if STOCK not in seconds:
        return STOCK
    fastest = min(seconds, key=lambda name: (seconds[name], name != STOCK))
    gain = seconds[STOCK] - seconds[fastest]
    return fastest if gain > margin * seconds[STOCK] and gain > min_gain_s else STOCK


# Two fp32 GEMMs summing K terms in different orders differ by rounding that grows like sqrt(K) eps
# of the result's scale: measured at most 1/40 of 16x that on the ann's and cnn's shapes, which
# still catches a transposed operand, a dropped bias or an unwritten output (errors of 1e-2 and up).
TOLERANCE_EPS = 16


def disagreement(result: torch.Tensor, reference: torch.Tensor, terms: int) -> str | None:
    """Why `result` is not `reference` computed another way, or None when it is."""
    if not isinstance(result, torch.Tensor) or result.shape != reference.shape or result.dtype != reference.dtype:
        return f"gives {getattr(result, 'dtype', type(result).__name__)} {tuple(getattr(result, 'shape', ()))}, " \
               f"not {reference.dtype} {tuple(reference.shape)}"
    if not result.is_contiguous():
        return "gives a non-contiguous result"
    scale = reference.abs().max().item()
    error = (result - reference).abs().max().item()  # NaN when result has NaNs: then not <= below
    tolerance = TOLERANCE_EPS * torch.finfo(torch.float32).eps * math.sqrt(terms) * max(scale, 1e-30)
    return None if error <= tolerance else f"differs from mkl by {error:.2g} (tolerance {tolerance:.2g})"


WARMUP_CALLS = 2  # after the verifying call, itself the first warm-up
MIN_CALLS, MAX_CALLS = 3, 20


def _trial(key: str, product: str, arguments: tuple, terms: int, allowance_s: float,
           clock: Callable[[], float]) -> tuple[str, str]:
    """Verify and time every candidate for one product within `allowance_s`; (choice, note).

    It overruns by at most one candidate's warm-up and MIN_CALLS timed calls of each candidate.
    """
    label = f"{key} {product}"
    if allowance_s <= 0:
        return STOCK, f"{label}: not measured (trial budget spent); mkl kept"
    deadline = clock() + allowance_s
    verified: dict[str, Callable[[], object]] = {}
    round_s = 0.0  # one call of each verified candidate, by its first call (an overestimate: a cold call)
    problems: list[str] = []
    reference = None
    for name, kernel in CANDIDATES[product].items():
        if name != STOCK and clock() >= deadline:
            problems.append(f"{name} not measured (its share of the trial budget spent)")
            continue
        call = functools.partial(kernel, *arguments)
        try:
            start = clock()
            result = call()
            round_s += clock() - start
        except Exception as error:  # an unsupported kernel or build: a candidate less, not a failure
            problems.append(f"{name} dropped: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}")
            continue
        if name == STOCK:
            reference = result
        else:
            reason = disagreement(result, reference, terms) if reference is not None else "no mkl result to check"
            if reason:
                problems.append(f"{name} dropped: {reason}")
                continue
        for _ in range(WARMUP_CALLS):
            call()
        verified[name] = call
    calls = min(MAX_CALLS, max(MIN_CALLS, int((deadline - clock()) / max(round_s, 1e-9))))
    seconds = median_seconds(verified, calls=calls, clock=clock)
    choice = choose(seconds)
    measured = " vs ".join(f"{name} {s * 1e3:.2f} ms" for name, s in sorted(seconds.items(), key=lambda i: i[1]))
    return choice, f"{label}: {measured}; {choice} chosen" + "".join(f"; {p}" for p in problems)


def _operands(layer: TunedLinear, batch_size: int, generator: torch.Generator) -> dict[str, tuple]:
    """Random fp32 operands of the layer's real shapes, for each product's candidates."""
    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    x, weight, gy = normal(batch_size, layer.in_features), normal(layer.out_features, layer.in_features), \
        normal(batch_size, layer.out_features)
    bias = normal(layer.out_features) if layer.bias is not None else None  # random: a dropped bias must show
    return {"forward": (x, weight, bias), "input gradient": (gy, weight), "weight gradient": (gy, x),
            UPDATE: (gy, x, weight)}


def tune(network: nn.Module, batch_size: int, *, budget_s: float = 3.0,
         clock: Callable[[], float] = time.perf_counter, optimizer: torch.optim.Optimizer | None = None) -> Tuning:
    """Swap every CPU nn.Linear in `network` for a TunedLinear running the kernels measured fastest.

    Each distinct layer shape is measured once per product, the biggest first: a product's share
    of what is left of `budget_s` is its share of the work left (in x out per row), and time a
    product does not need goes to the next. Big layers thus get fewer timed calls than the cap
    only when the budget is tight, and once it is spent the remaining products keep mkl.
    """
    start = clock()
    layers = {layer.key: layer for layer in _swap(network, {})}  # one trial per distinct shape
    by_size = sorted(layers.values(), key=lambda layer: -layer.in_features * layer.out_features)
    # With a plain SGD `optimizer`, the update fused into the weight-gradient GEMM is a candidate too.
    tasks = [(layer.key, product) for layer in by_size for product in PRODUCTS
             + ((UPDATE,) if plain_sgd_group(optimizer, layer.weight) else ())]
    work = [layers[key].in_features * layers[key].out_features for key, _ in tasks]
    generator = torch.Generator().manual_seed(0)
    choices: dict[str, str] = {}
    notes: list[str] = []
    operands: dict[str, dict[str, tuple]] = {}
    for index, (key, product) in enumerate(tasks):
        allowance = (budget_s - (clock() - start)) * work[index] / sum(work[index:])
        layer = layers[key]
        if allowance > 0 and key not in operands:
            operands = {key: _operands(layer, batch_size, generator)}  # one layer's operands held at a time
        # Terms summed per output value: in_features for the forward, out_features or the batch for gradients.
        terms = {"forward": layer.in_features, "input gradient": layer.out_features,
                 "weight gradient": batch_size, UPDATE: batch_size}[product]
        arguments = operands[key][product] if allowance > 0 else ()
        with torch.no_grad():
            choices[f"{key} {product}"], note = _trial(key, product, arguments, terms, allowance, clock)
        notes.append(note)
    _swap(network, choices)
    return Tuning(choices, notes, clock() - start)
