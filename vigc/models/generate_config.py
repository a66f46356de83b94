"""The original's `run.generate_cfg` section: one parser, one set of defaults, one range check for every workflow.

Generation, training's validation and the demo all read the section through `GenerateConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigc.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, PROBABILITY, check_ranges, validate_builder_kwargs
from vigc.errors import ConfigError
from vigc.models.decoding import DecodingSettings

__all__ = ["GenerateConfig", "check_lavis_decoding"]


@dataclass(frozen=True)
class GenerateConfig:
    """The original's `run.generate_cfg` keys, with the repetition penalty (hard-coded 1.5 there) configurable.

    One parser and one set of defaults for every workflow that reads the section: generation, training's
    validation and the demo. Lengths count the hidden BOS of transformers 4.33, as the original's did
    (`max_len: 250` → 249 new tokens).
    """

    max_len: int = 250
    min_len: int = 1
    num_beams: int = 5
    use_nucleus_sampling: bool = False
    top_p: float = 0.9
    temperature: float = 1.0
    repetition_penalty: float = 1.5
    length_penalty: float = 1.0

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, where: str = "run.generate_cfg", source: str = ""
    ) -> GenerateConfig:
        """Validate a config mapping: unknown keys (with a close match), wrong types and values out of range are
        errors naming the key."""
        values = dict(values or {})
        validate_builder_kwargs(cls, values, section=where, source=source)
        config = cls(**values)
        check_lavis_decoding(where, config)
        return config

    def decoding(self, num_return_sequences: int = 1) -> DecodingSettings:
        """The decoder's settings for these keys (sampling draws one text per return sequence)."""
        return DecodingSettings.from_lavis(
            use_nucleus_sampling=self.use_nucleus_sampling,
            num_beams=1 if self.use_nucleus_sampling else self.num_beams,
            max_length=self.max_len,
            min_length=self.min_len,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            length_penalty=self.length_penalty,
            num_captions=num_return_sequences,
            temperature=self.temperature,
        )


def check_lavis_decoding(where: str, keys: GenerateConfig) -> None:
    """Check a ``generate_cfg`` section's value ranges, every workflow the same way.

    Raises:
        ConfigError: Naming each value out of range (``num_beams=0``, ``top_p=1.5``, ``min_len`` > ``max_len``).
    """
    check_ranges(
        where,
        [
            ("max_len", keys.max_len, AT_LEAST_ONE),
            ("min_len", keys.min_len, NON_NEGATIVE),
            ("num_beams", keys.num_beams, AT_LEAST_ONE),
            ("top_p", keys.top_p, PROBABILITY),
            ("temperature", keys.temperature, POSITIVE),
            ("repetition_penalty", keys.repetition_penalty, POSITIVE),
        ],
    )
    if keys.min_len > keys.max_len:
        raise ConfigError(f"{where}.min_len ({keys.min_len}) must not exceed {where}.max_len ({keys.max_len}).")
