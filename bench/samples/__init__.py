"""recorded Jetstream v1 frames: the wire as the consumer must understand it.

- `jetstream-v1.jsonl`: a short story of playlist edits (its notes in
  `jetstream-v1.notes.txt`, one line per frame), whose final state the tests check;
- `jetstream-v1-bad.txt`: frames that must be survived (bad JSON, wrong shapes,
  oversized records, bad URIs), one per line.

kept in the package (not in tests/) because the load benchmarks mix the bad
frames into their generated firehose, and shipped code never reads the tests.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent
STORY_PATH = SAMPLES_DIR / "jetstream-v1.jsonl"
BAD_FRAMES_PATH = SAMPLES_DIR / "jetstream-v1-bad.txt"


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def story_frames() -> list[str]:
    """the sample story's frames, in order."""
    return _lines(STORY_PATH)


def bad_frames() -> list[str]:
    """the frames a consumer must count, skip and survive."""
    return _lines(BAD_FRAMES_PATH)
