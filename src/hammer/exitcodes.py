"""Process exit codes, documented in the README."""

OK = 0  # the run completed (whatever the server answered)
FAILED = 1  # the run could not be carried out or its results could not be written
USAGE = 2  # bad flags or arguments: nothing was sent
SATURATED = 3  # the run completed, but the generator could not keep its own schedule
SLO_FAILED = 4  # the run completed, and an --slo threshold failed
INTERRUPTED = 130  # SIGINT: partial report written
TERMINATED = 143  # SIGTERM: partial report written
