"""The classifier trainable's config, as a pydantic model that rejects unknown
keys. No TensorFlow: the driver validates ``fixed:`` values and every searched
value against it before a trial starts, and the trial validates its config
again on entry.

Augmentation parameters mean what they mean in Keras' ImageDataGenerator;
0 (or ``false``/``null``) turns each one off.

Types are strict, as in the sweep spec: ``true`` and ``"8"`` are not numbers,
an integer is not a float's integral value (``8.0`` is not an ``int``), and
NaN and infinities are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from scenetune.trainables.classifier.backbones import BACKBONES, get_backbone


class Strict(BaseModel):
    # strict: no true for 1, no "8" for 8 (an int is still a float); no NaN or infinity
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _list_as_tuple(value):
    """YAML and JSON write a pair as a list; strict validation wants the tuple."""
    return tuple(value) if isinstance(value, list) else value


# [low, high]: strict about its numbers, not about the list that holds them
Pair = Annotated[tuple[float, float], BeforeValidator(_list_as_tuple)]
# The most epochs a trial may train (a scheduler replays its rungs epoch by epoch).
MAX_EPOCHS = 10_000


class Augment(Strict):
    rotation_range: float = Field(0.0, ge=0, le=180, description="degrees, uniform in [-r, r]")
    zoom_range: float | Pair = Field(
        0.0, description="z -> scale in [1-z, 1+z], or [low, high]")
    width_shift_range: float = Field(0.0, ge=0, lt=1, description="fraction of the width")
    height_shift_range: float = Field(0.0, ge=0, lt=1, description="fraction of the height")
    shear_range: float = Field(0.0, ge=0, le=90, description="shear angle in degrees")
    horizontal_flip: bool = False
    brightness_range: float | Pair | None = Field(
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
    """Test-only: see :mod:`scenetune.trainables.faults`."""
    epoch: int = Field(1, ge=1)
    mode: Literal["once", "always", "oom"] = "once"
    oom_limit_mb: int = Field(4096, ge=64, description="mode oom: give up (raise) after allocating this much")


# Epochs that checkpoint besides a trial's last, set by the sweep from its
# ``checkpoint.frequency`` (see scenetune.trainables.reporting); None: every epoch.
CheckpointEpochs = list[Annotated[int, Field(ge=1)]] | None


class ClassifierConfig(Strict):
    backbone: str = "mobilenet_v2"
    weights: str = Field("imagenet", description="imagenet, none, or a path to a weights file")
    trainable_layers: int = Field(0, ge=0, description="last k backbone layers unfrozen; 0 = frozen")
    image_size: int = Field(224, ge=8, le=1024)
    pooling: Literal["avg", "max", "flatten"] = Field(
        "avg", description="avg or max: global pooling; flatten: every feature of the last map into the dense "
                           "layers (basic_cnn at a fixed image size, as small CNNs are usually written)")
    dropout: float = Field(0.0, ge=0, lt=1)
    dense_units: int = Field(256, ge=0, description="hidden dense layer width; 0 = none")
    dense_activation: Literal["relu", "sigmoid", "tanh", "gelu", "swish", "elu"] = "relu"
    learning_rate: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(20, ge=1)
    cnn_blocks: int = Field(3, ge=1, le=8, description="basic_cnn only: conv + max-pool blocks")
    cnn_filters: int = Field(32, ge=1, description="basic_cnn only: filters of the first block")
    augment: Augment = Augment()
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)
    shuffle_buffer: int = Field(2048, ge=1, description="make_dataset only; the cache feed shuffles whole splits")
    cache_dir: str | None = Field(None, description="node-local decode cache; default $SCENETUNE_CACHE "
                                                    "or ~/.cache/scenetune")
    augment_on: Literal["auto", "cpu", "model"] = Field(
        "auto", description="auto: in the model on a GPU trial, else on the CPU (tf.data map)")
    mixed_precision: Literal["float32", "float16", "bfloat16"] = "float32"
    jit_compile: bool = False
    steps_per_execution: int = Field(
        1, ge=1, description="train steps per call into TensorFlow: more keeps a fast GPU fed with a small model")
    progressive_resize: list[int] | None = Field(
        None, description="image sizes, smallest first: train the first rungs small, grow as ASHA promotes")
    resize_epochs: list[int] | None = Field(
        None, description="epoch at which each progressive size starts (default: ASHA's rungs, set by the sweep)")
    debug_fault: DebugFault | None = None
    data: DataRef | None = None
    checkpoint_epochs: CheckpointEpochs = None

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v):
        get_backbone(v)
        return v

    @model_validator(mode="after")
    def _progressive_sizes(self):
        sizes = self.progressive_resize
        if sizes is None:
            if self.resize_epochs is not None:
                raise ValueError("resize_epochs needs progressive_resize")
            return self
        if not sizes or sizes != sorted(set(sizes)):
            raise ValueError(f"progressive_resize must list distinct sizes, smallest first, got {sizes}")
        if "image_size" in self.model_fields_set and self.image_size != sizes[-1]:
            raise ValueError(f"image_size {self.image_size} differs from progressive_resize's last size {sizes[-1]}")
        self.image_size = sizes[-1]
        starts = self.resize_epochs
        if starts is not None and (len(starts) != len(sizes) or starts[0] != 0 or starts != sorted(set(starts))):
            raise ValueError(f"resize_epochs must give each size an increasing start epoch from 0, got {starts}")
        for size in sizes:
            self._check_size(size)
        return self

    def facts(self) -> dict:
        """What the trial's resolved config records besides its fields: the
        pretrained network behind the backbone (None for one trained from scratch)."""
        backbone = BACKBONES[self.backbone]
        return {"backbone_network": backbone.application if backbone.pretrained else None}

    def phases(self) -> list[tuple[int, int, int]]:
        """``(first epoch, end epoch, image size)`` of each training phase."""
        if not self.progressive_resize:
            return [(0, self.epochs, self.image_size)]
        if self.resize_epochs is None:
            raise ValueError("progressive_resize needs resize_epochs (a sweep with ASHA sets them to its rungs)")
        starts, sizes = self.resize_epochs, self.progressive_resize
        ends = [*starts[1:], self.epochs]
        return [(a, min(b, self.epochs), s) for a, b, s in zip(starts, ends, sizes) if a < self.epochs]

    @model_validator(mode="after")
    def _flatten_fits(self):
        if self.pooling != "flatten":
            return self
        if BACKBONES[self.backbone].pretrained:
            raise ValueError(f"pooling flatten applies to basic_cnn only: {self.backbone}'s last feature map is "
                             "too wide to flatten into a dense layer; use avg or max")
        if self.progressive_resize:
            raise ValueError("pooling flatten needs one image size; progressive_resize changes it (use avg or max)")
        return self

    @model_validator(mode="after")
    def _size_fits_backbone(self):
        self._check_size(self.image_size)
        return self

    def _check_size(self, size: int) -> None:
        spec = BACKBONES[self.backbone]
        if size < spec.min_size:
            raise ValueError(f"image_size {size} is below {self.backbone}'s minimum of {spec.min_size}")
        if self.backbone == "basic_cnn" and size < 2 ** self.cnn_blocks:
            raise ValueError(f"image_size {size} is too small for {self.cnn_blocks} pooling blocks")

    @property
    def effective_weights(self) -> str:
        """``imagenet`` means nothing to the hand-made CNN: it starts from scratch."""
        if not BACKBONES[self.backbone].pretrained and self.weights == "imagenet":
            return "none"
        return self.weights
