"""Prices the user gives (--price cpu=0.05,cuda=2.49: money per hour per device), and what a case
costs at them. Pure: no price is ever assumed; without one, a case has no cost and says so."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .cases import device_name
from .energy import RECIPE_EPOCHS
from .errors import ConfigError

# No device costs more an hour in any currency; beyond it a cost per million images overflows to inf.
MAX_PRICE_PER_HOUR = 1e9
# A device ("cuda:1"), a kind ("cuda", "cpu", "mps"), as --devices names them.
_DEVICE = re.compile(r"^(cpu|(cuda|mps|xpu)(:\d+)?)$")  # a machine has one CPU: no cpu:N


def parse_prices(text: str) -> dict[str, float]:
    """'cpu=0.05,cuda=2.49' as {'cpu': 0.05, 'cuda': 2.49}; a one-line error for anything else."""
    prices: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        device, equals, amount = (s.strip() for s in part.partition("="))
        device = device_name(device)
        if not equals and _DEVICE.match(device):  # cuda:0,1=3 reads as cuda:0 and 1=3
            raise ConfigError(f"--price: {part!r} has no price: write DEVICE=PRICE for each device, e.g. --price "
                              "cuda:0=2.49,cuda:1=2.49 (or cuda=2.49 for every GPU)")
        if not equals or not device or not amount:
            raise ConfigError(f"--price: {part!r} is not DEVICE=PRICE; write e.g. --price cpu=0.05,cuda=2.49 "
                              "(money per hour per device)")
        if not _DEVICE.match(device):
            raise ConfigError(f"--price: {device!r} is not a device; name cpu, cuda, cuda:N, mps or xpu, "
                              "e.g. --price cpu=0.05,cuda=2.49")
        try:
            value = float(amount)
        except ValueError:
            raise ConfigError(f"--price: {amount!r} for {device} is not a number; write e.g. {device}=2.49") from None
        if not math.isfinite(value) or not 0 <= value <= MAX_PRICE_PER_HOUR:
            raise ConfigError(f"--price: {device}={amount} must be a price per hour from 0 to "
                              f"{MAX_PRICE_PER_HOUR:.0e}")
        value += 0.0  # -0 is 0: a cost of "-0.00" reads as a refund
        if device in prices:
            raise ConfigError(f"--price: {device} is priced twice; give each device once")
        prices[device] = value
    if not prices:
        raise ConfigError("--price: no price given; write e.g. --price cpu=0.05,cuda=2.49 (money per hour per device)")
    return prices


def price_per_hour(prices: dict[str, float], device: str) -> float | None:
    """One device's price: its own ('cuda:1'), else its kind's ('cuda'); None if not given.
    A data-parallel group's name ('cuda:0,1', 'cpu:2') is priced by its kind."""
    if device in prices:
        return prices[device]
    kind = device.split(":")[0]
    return prices.get(kind)


def is_device(name: str) -> bool:
    return bool(_DEVICE.match(name))


def case_price_per_hour(prices: dict[str, float], device: str, devices: int) -> float | None:
    """All of a case's devices per hour: a GPU group ('cuda:0,1') by each GPU's own price where one
    is given, else its kind's; anything else its price times `devices`. None if one is unpriced."""
    kind, _, numbers = device.partition(":")
    members = numbers.split(",") if kind == "cuda" and "," in numbers else []
    if len(members) == devices:
        each = [price_per_hour(prices, f"cuda:{number}") for number in members]
        return None if None in each else sum(each)
    one = price_per_hour(prices, device)
    return None if one is None else one * devices


@dataclass(frozen=True)
class Costs:
    """What training a case costs at the prices given."""

    per_hour: float  # for all the case's devices
    per_epoch: float
    per_recipe: float  # the seeds' ten epochs
    per_million_images: float


def costs(per_hour: float, steady_epoch_s: float, images_per_s: float) -> Costs:
    """What `per_hour` (all the case's devices) comes to over an epoch, the recipe, a million images."""
    per_epoch = per_hour * steady_epoch_s / 3600
    return Costs(per_hour=per_hour, per_epoch=per_epoch, per_recipe=per_epoch * RECIPE_EPOCHS,
                 per_million_images=per_hour * 1e6 / images_per_s / 3600)



def repriced(labelled: list, price_texts: list[str] | None, currency: str | None) -> list:
    """(label, RunResult) pairs with the prices given to `report` or `compare` in place of their own: one
    set of prices, in one currency, for every file."""
    if price_texts is None:
        if currency is not None:  # a currency alone would put a new name on the old amounts
            raise ConfigError("--currency names the unit of --price: give the prices too, e.g. "
                              "--price cpu=0.05,cuda=2.49 --currency USD")
        return labelled
    prices = parse_prices(",".join(price_texts))
    for _, result in labelled:
        result.config.update(prices=prices, currency=currency or "")
    return labelled
