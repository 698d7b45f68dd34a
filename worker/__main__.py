"""`python -m worker` is `plyr-recs` (for environments without the console script)."""

from worker.cli import main

main()
