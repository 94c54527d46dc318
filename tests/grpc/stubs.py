"""Generates the Python stubs of echo.proto into a temp dir at import time and imports them.

Generated code is never committed: `grpc_tools.protoc` (pip `grpcio-tools`) writes `echo_pb2.py`
and `echo_pb2_grpc.py` into a fresh directory that is removed when the process exits.
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _generate():
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        sys.exit("tests/grpc: grpcio-tools is missing (python3 -m pip install grpcio grpcio-tools)")
    out = tempfile.mkdtemp(prefix="weir-grpc-stubs-")
    atexit.register(shutil.rmtree, out, True)
    # The well-known types (google/protobuf/any.proto) ship inside grpc_tools.
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "protoc",
        f"-I{HERE}",
        f"-I{wkt}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(HERE, "echo.proto"),
    ])
    if rc != 0:
        sys.exit(f"tests/grpc: protoc failed with {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")


echo_pb2, echo_pb2_grpc = _generate()
