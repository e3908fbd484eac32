"""LLM prices per million input and output tokens (built-in `prices.yml`, extended or overridden
by an operator's file of the same shape) and the cost of a run's token usage."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec

from floom_git.agents.messages import Usage
from floom_git.codec import load_yaml
from floom_git.errors import InvalidInput
from floom_git.schemas.patterns import explain

Dollars = Annotated[float, msgspec.Meta(ge=0)]
_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


class Price(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    input: Dollars  # US dollars per million input tokens
    output: Dollars  # US dollars per million output tokens


class PriceFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    models: dict[str, Price] = {}


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = dict(prices)

    @classmethod
    def load(cls, extra: Path | None = None) -> PriceTable:
        """The built-in prices, then `extra` (an operator's YAML file) on top.

        Raises InvalidInput naming the file and the bad field.
        """
        builtin = resources.files("floom_git.agents").joinpath("prices.yml").read_bytes()
        prices = _parse(builtin, "prices.yml")
        if extra is not None:
            try:
                data = extra.read_bytes()
            except OSError as exc:
                raise InvalidInput(
                    f"{extra}: cannot read the price file ({exc.strerror})"
                ) from None
            prices.update(_parse(data, str(extra)))
        return cls(prices)

    def price(self, model: str) -> Price | None:
        """The price of `model`, also found without a `vendor/` prefix or a date/`-latest`
        suffix (`gpt-4o-2024-08-06` is priced as `gpt-4o`); None when unknown."""
        names = [model, model.rsplit("/", 1)[-1]]
        for name in names + [_SUFFIX.sub("", n) for n in names]:
            if name in self.prices:
                return self.prices[name]
        return None

    def cost(self, model: str, usage: Usage) -> float | None:
        """US dollars for `usage` of `model`, rounded to a millionth; None when unpriced."""
        price = self.price(model)
        if price is None:
            return None
        dollars = (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1e6
        return round(dollars, 6)


def _parse(data: bytes, where: str) -> dict[str, Price]:
    raw = load_yaml(data, where=where)
    try:
        return msgspec.convert(raw or {}, PriceFile, strict=False).models
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {explain(exc)}") from None
