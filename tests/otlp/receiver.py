"""An OTLP/gRPC trace receiver for tests: serves TraceService/Export on 127.0.0.1 and writes
every received span as one JSON line (ids in hex) to the file given.

usage: receiver.py PORT_FILE SPANS_FILE
It binds an ephemeral port, writes it to PORT_FILE, and runs until killed."""

import json
import sys
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        for rs in request.resource_spans:
            resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    line = {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": {kv.key: value_of(kv.value) for kv in s.attributes},
                        "status_code": s.status.code,
                        "resource": resource,
                        "scope": ss.scope.name,
                    }
                    self.out.write(json.dumps(line) + "\n")
                    self.out.flush()
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    port_file, spans_file = sys.argv[1], sys.argv[2]
    out = open(spans_file, "a", encoding="utf-8")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(out), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(port))
    import os

    os.replace(port_file + ".tmp", port_file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
