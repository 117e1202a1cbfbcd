"""Fixtures shared by the test modules."""

# The local HTTP and S3 servers (tests/servers.py), for any test that reads
# remote files.
from servers import http_server, s3_server  # noqa: F401
