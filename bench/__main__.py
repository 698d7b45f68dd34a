"""`python -m bench`: the benchmarks' command line (bench.cli).

a benchmark starts servers and service processes of its own and stops them as it
ends, Ctrl-C included. a SIGTERM (`timeout`, a CI runner giving up) is taken as a
Ctrl-C, so the same cleanup runs: by default it would end this process at once and
leave workers, stand-ins and databases running, which then skew every later figure
on the machine.
"""

import signal
from types import FrameType

from bench.cli import main


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


signal.signal(signal.SIGTERM, _as_interrupt)
main()
