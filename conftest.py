"""Shared by the tests and the doctests: dead letters that reach the end of a stream without a
`partition` go to a default local queue (``$SESA_DLQ``); keep it out of the working tree."""

import os
import tempfile

os.environ.setdefault("SESA_DLQ", tempfile.mkdtemp(prefix="sesa-dlq-tests-"))
