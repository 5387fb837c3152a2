"""What a results file says of the data set a run trained on: its source, sizes, classes, a sample."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DatasetInfo:
    name: str
    source: str
    train_images: int
    test_images: int
    image_shape: list[int]  # (channels, height, width)
    classes: list[str]
    matches_release: bool | None
    accuracy_meaningful: bool
    notes: list[str] = field(default_factory=list)
    # The first test images, so a report can show them with predictions: base64 of uint8 NCHW.
    sample_images_b64: str | None = field(default=None, repr=False)  # tens of kB: never in a repr
    sample_labels: list[int] = field(default_factory=list)
    # A digest of every image and label after --limit: a resumed run must train on the same data.
    fingerprint: str | None = None

    def sample_images(self):
        """The sample images as a uint8 (N, H, W, C) array, ready to draw."""
        import base64

        import numpy as np

        if not self.sample_images_b64:
            return None
        raw = np.frombuffer(base64.b64decode(self.sample_images_b64), dtype=np.uint8)
        return raw.reshape(-1, *self.image_shape).transpose(0, 2, 3, 1)
