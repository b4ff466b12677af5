"""The unit a report is built from.

Each report part (the classifier's tables and figures, the GAN's grids and
curves...) is a function ``(experiment, out_dir) -> list[Section]``; the report
writer renders sections in order into Markdown, HTML, CSV and LaTeX. Figures
are PNG files already written under ``out_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Section:
    title: str
    text: str = ""  # Markdown paragraphs shown under the title
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # file stem -> table
    figures: dict[str, str] = field(default_factory=dict)  # caption -> PNG path (inside out_dir)
