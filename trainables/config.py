"""The classifier trainable's config, as a pydantic model that rejects unknown
keys. No TensorFlow: the driver validates ``fixed:`` values and every searched
value against it before a trial starts, and the trial validates its config
again on entry.

Augmentation parameters mean what they mean in Keras' ImageDataGenerator;
0 (or ``false``/``null``) turns each one off.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainables.backbones import BACKBONES, get_backbone


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Augment(Strict):
    rotation_range: float = Field(0.0, ge=0, le=180, description="degrees, uniform in [-r, r]")
    zoom_range: float | tuple[float, float] = Field(
        0.0, description="z -> scale in [1-z, 1+z], or [low, high]")
    width_shift_range: float = Field(0.0, ge=0, lt=1, description="fraction of the width")
    height_shift_range: float = Field(0.0, ge=0, lt=1, description="fraction of the height")
    shear_range: float = Field(0.0, ge=0, le=90, description="shear angle in degrees")
    horizontal_flip: bool = False
    brightness_range: float | tuple[float, float] | None = Field(
        None, description="d -> factor in [1-d, 1+d], or [low, high]; null or 0 off")
    fill_mode: Literal["nearest", "constant", "reflect", "wrap"] = "nearest"
    cval: float = 0.0

    @field_validator("zoom_range")
    @classmethod
    def _zoom(cls, v):
        low, high = (1 - v, 1 + v) if isinstance(v, (int, float)) else v
        if not 0 < low <= high:
            raise ValueError(f"zoom gives scale range [{low}, {high}]; needs 0 < low <= high")
        return v

    @field_validator("brightness_range")
    @classmethod
    def _brightness(cls, v):
        if v is None or v == 0:
            return None
        low, high = (1 - v, 1 + v) if isinstance(v, (int, float)) else v
        if not 0 <= low <= high:
            raise ValueError(f"brightness gives factors [{low}, {high}]; needs 0 <= low <= high")
        return v

    def zoom_bounds(self) -> tuple[float, float]:
        z = self.zoom_range
        return (1 - z, 1 + z) if isinstance(z, (int, float)) else tuple(z)

    def brightness_bounds(self) -> tuple[float, float] | None:
        b = self.brightness_range
        if b is None:
            return None
        return (1 - b, 1 + b) if isinstance(b, (int, float)) else tuple(b)

    @property
    def enabled(self) -> bool:
        return bool(self.rotation_range or self.zoom_bounds() != (1.0, 1.0) or self.width_shift_range
                    or self.height_shift_range or self.shear_range or self.horizontal_flip
                    or self.brightness_bounds())


class DataRef(Strict):
    """Where a trial finds its images; filled in by the sweep, not the user."""
    root: str
    manifest: str  # URI of the experiment's split manifest (CSV)
    classes: list[str]


class DebugFault(Strict):
    """Test-only: see :mod:`trainables.faults`."""
    epoch: int = Field(1, ge=1)
    mode: Literal["once", "always", "oom"] = "once"
    oom_limit_mb: int = Field(4096, ge=64, description="mode oom: give up (raise) after allocating this much")


class ClassifierConfig(Strict):
    backbone: str = "mobilenet_v2"
    weights: str = Field("imagenet", description="imagenet, none, or a path to a weights file")
    trainable_layers: int = Field(0, ge=0, description="last k backbone layers unfrozen; 0 = frozen")
    image_size: int = Field(224, ge=8, le=1024)
    pooling: Literal["avg", "max"] = "avg"
    dropout: float = Field(0.0, ge=0, lt=1)
    dense_units: int = Field(256, ge=0, description="hidden dense layer width; 0 = none")
    dense_activation: Literal["relu", "sigmoid", "tanh", "gelu", "swish", "elu"] = "relu"
    learning_rate: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(20, ge=1)
    cnn_blocks: int = Field(3, ge=1, le=8, description="basic_cnn only: conv + max-pool blocks")
    cnn_filters: int = Field(32, ge=1, description="basic_cnn only: filters of the first block")
    augment: Augment = Augment()
    seed: int = 0
    shuffle_buffer: int = Field(2048, ge=1)
    mixed_precision: Literal["float32", "float16", "bfloat16"] = "float32"
    jit_compile: bool = False
    debug_fault: DebugFault | None = None
    data: DataRef | None = None

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v):
        get_backbone(v)
        return v

    @model_validator(mode="after")
    def _size_fits_backbone(self):
        spec = BACKBONES[self.backbone]
        if self.image_size < spec.min_size:
            raise ValueError(f"image_size {self.image_size} is below {self.backbone}'s minimum of {spec.min_size}")
        if self.backbone == "basic_cnn" and self.image_size < 2 ** self.cnn_blocks:
            raise ValueError(f"image_size {self.image_size} is too small for {self.cnn_blocks} pooling blocks")
        return self

    @property
    def effective_weights(self) -> str:
        """``imagenet`` means nothing to the hand-made CNN: it starts from scratch."""
        if not BACKBONES[self.backbone].pretrained and self.weights == "imagenet":
            return "none"
        return self.weights
