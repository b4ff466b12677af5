"""The GAN trainable's config, as a pydantic model that rejects unknown keys.
No TensorFlow: the driver validates ``fixed:`` values and every searched value
against it before a trial starts (as it does for the classifier).

Widths: the generator's last upsampling block has ``gen_filters`` filters and
each block before it twice as many (so the widest sits at 4x4); the
discriminator's first block has ``disc_filters`` and each next block doubles
them. Both networks have ``log2(image_size / 4)`` stride-2 stages, so the same
base widths give comparable networks at 32, 64 and 128 px.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from scenetune.trainables.classifier.config import MAX_EPOCHS, CheckpointEpochs, DataRef, DebugFault, Strict
from scenetune.trainables.gan.metrics import COLLAPSE_DIVERSITY, COLLAPSE_PATIENCE

EXTRACTORS = ("auto", "inception_v3", "classifier", "random")


class GanConfig(Strict):
    gen_filters: int = Field(32, ge=2, le=512, description="filters of the generator's last block (x2 each block up)")
    disc_filters: int = Field(32, ge=2, le=512, description="filters of the discriminator's first block (x2 each)")
    latent_dim: int = Field(100, ge=2, le=1024)
    image_size: Literal[32, 64, 128] = 64
    gen_activation: Literal["relu", "leaky_relu"] = "relu"
    disc_dropout: float = Field(0.3, ge=0, lt=1)
    gen_learning_rate: float = Field(2e-4, gt=0, le=1)
    disc_learning_rate: float = Field(2e-4, gt=0, le=1)
    beta_1: float = Field(0.5, ge=0, lt=1, description="Adam's beta_1 (DCGAN: 0.5)")
    batch_size: int = Field(32, ge=2)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="one-sided: real targets are 1 - s")
    d_steps: int = Field(1, ge=1, le=10, description="discriminator updates per generator update")
    grayscale: bool = Field(False, description="train on (and generate) one-channel images")
    conditional: bool = Field(False, description="class-conditional G and D (label embedding / projection)")
    categories: list[str] | None = Field(None, description="train on these classes only; null = all")
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    steps_per_epoch: int | None = Field(
        None, ge=1, description="generator updates per epoch; null = one pass over the training images")
    seed: int = Field(0, ge=0, le=2 ** 32 - 1)
    grid_size: int = Field(8, ge=1, le=16, description="sample grid is grid_size x grid_size fixed latents")
    fid_samples: int = Field(1024, ge=8, description="generated images per evaluation (real: up to as many)")
    feature_extractor: Literal["auto", "inception_v3", "classifier", "random"] = "auto"
    classifier_checkpoint: str | None = Field(
        None, description="a classifier's model.keras (or a checkpoint folder holding one), for FID features")
    collapse_diversity: float = Field(COLLAPSE_DIVERSITY, ge=0, le=1, description="diversity below this: collapse")
    collapse_patience: int = Field(COLLAPSE_PATIENCE, ge=1,
                                   description="epochs in a row of low diversity or a saturated D that mean collapse")
    jit_compile: bool = False
    debug_fault: DebugFault | None = None
    data: DataRef | None = None
    checkpoint_epochs: CheckpointEpochs = None

    @field_validator("categories")
    @classmethod
    def _nonempty(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("categories: give at least one class, each once")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.feature_extractor == "classifier" and not self.classifier_checkpoint:
            raise ValueError("feature_extractor classifier needs classifier_checkpoint")
        if self.categories and self.data is not None:
            unknown = [c for c in self.categories if c not in self.data.classes]
            if unknown:
                raise ValueError(f"categories: not in the experiment's classes: {', '.join(unknown)}")
        return self

    @property
    def classes(self) -> list[str]:
        """The classes this trial trains on (its conditional labels index this list)."""
        if self.categories:
            return list(self.categories)
        return list(self.data.classes) if self.data is not None else []

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def stages(self) -> int:
        """Stride-2 stages between 4x4 and the image: 3 at 32 px, 4 at 64, 5 at 128."""
        return {32: 3, 64: 4, 128: 5}[self.image_size]
